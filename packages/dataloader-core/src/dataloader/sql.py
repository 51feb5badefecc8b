"""SQL helpers shared by database connectors: identifier quoting and table names."""

from __future__ import annotations

from dataclasses import dataclass

STATE_TABLE = "_dataloader_state"
STAGING_PREFIX = "_dl_stage_"


def quote_identifier(name: str) -> str:
    """`name` as a double-quoted SQL identifier; any embedded quote is doubled."""
    if "\x00" in name:
        raise ValueError("an identifier cannot contain a NUL character")
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class TableName:
    """A possibly schema-qualified table name, as written in a recipe (`schema.table`)."""

    schema: str | None
    name: str

    @classmethod
    def parse(cls, text: str) -> TableName:
        """Split `schema.table`; parts may be double-quoted to hold dots, spaces or capitals."""
        parts: list[str] = []
        current, quoted, i = "", False, 0
        while i < len(text):
            char = text[i]
            if quoted:
                if char == '"' and i + 1 < len(text) and text[i + 1] == '"':
                    current += '"'
                    i += 1
                elif char == '"':
                    quoted = False
                else:
                    current += char
            elif char == '"':
                if current:
                    raise ValueError(
                        f'{text!r} is not a table name: a quote may only open a whole part (write `"My ""Odd"" Name"`)'
                    )
                quoted = True
            elif char == ".":
                parts.append(current)
                current = ""
            else:
                current += char
            i += 1
        parts.append(current)
        if quoted or len(parts) > 2 or not all(parts):
            raise ValueError(f"{text!r} is not a table name; expected `table` or `schema.table`")
        return cls(parts[0], parts[1]) if len(parts) == 2 else cls(None, parts[0])

    def sql(self) -> str:
        quoted = quote_identifier(self.name)
        return f"{quote_identifier(self.schema)}.{quoted}" if self.schema else quoted

    def sibling(self, name: str) -> TableName:
        """Another table in the same schema."""
        return TableName(self.schema, name)

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name
