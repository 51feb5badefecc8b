"""The recipe's `normalization:` section: how nested records become flat tables.

Checked without pyarrow (validate stays light); `dataloader.normalize.normalizer` applies it
to Arrow batches.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Strategy = Literal["auto", "flatten", "explode", "json_column"]
ArrayAction = Literal["create_table", "json_column", "explode"]
OnCollision = Literal["fail", "suffix"]


def _check_path(value: str) -> str:
    if not value or any(not segment for segment in value.split(".")):
        raise ValueError(f"{value!r} is not a dot path of field names (like `orders.items`)")
    return value


class ArrayRule(BaseModel):
    """One `normalization.array_handling[]` entry: what to do with one list.

    :param field: the list's dot path from the root record (`orders`, `orders.items`); the
        elements of a list of lists are the segment `value` (`matrix.value`).
    :param action: `create_table` (a child table), `json_column` (one JSON column) or
        `explode` (one row of the parent per element).
    :param table_name: the child table's name (`create_table` only); its own child tables
        start with this name.
    :param relationship: `one_to_many`, the only kind there is.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str
    action: ArrayAction
    table_name: str | None = Field(default=None, min_length=1)
    relationship: Literal["one_to_many"] | None = None

    @field_validator("field")
    @classmethod
    def _dot_path(cls, value: str) -> str:
        return _check_path(value)

    @model_validator(mode="after")
    def _table_name_needs_table(self) -> ArrayRule:
        if self.table_name is not None and self.action != "create_table":
            raise ValueError(
                f"`table_name` is only for action `create_table` (field {self.field!r} has "
                f"action `{self.action}`)"
            )
        return self


class NamingConfig(BaseModel):
    """`normalization.naming`: names of child tables and flattened columns.

    :param max_identifier_length: the longest name in UTF-8 bytes; a longer one is cut on a
        character boundary and ends in `_` + 8 hex characters of a hash of the full name.
        Unset: the destination's limit (none when the destination has none).
    :param on_collision: two paths giving one name: `fail` the run, or `suffix` the more
        nested path's name with `_` + 8 hex characters of a hash of its path.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_identifier_length: int | None = Field(default=None, ge=10)
    on_collision: OnCollision = "fail"


class NormalizationConfig(BaseModel):
    """The `normalization:` section.

    :param enabled: normalize nested data (default true when the section is given).
    :param max_depth: a struct or list at nesting level `max_depth` or deeper is kept as one
        JSON column (root fields are at level 0; a struct's fields and a list's elements are
        one level deeper).
    :param strategy: for nested values without a rule: `auto` (structs flattened into
        `a__b` columns, lists into child tables), `flatten` (structs flattened, lists as JSON),
        `explode` (structs flattened, each list exploded into its parent's rows) or
        `json_column` (every struct and list as one JSON column).
    :param separator: joins path segments in column and table names.
    :param array_handling: per-list rules overriding the strategy.
    :param json_fields: dot paths of fields kept as one JSON column.
    :param naming: identifier length and collisions.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    max_depth: int = Field(default=3, ge=0)
    strategy: Strategy = "auto"
    separator: str = Field(default="__", min_length=1)
    array_handling: list[ArrayRule] = Field(default_factory=list)
    json_fields: list[str] = Field(default_factory=list)
    naming: NamingConfig = Field(default_factory=NamingConfig)

    @field_validator("json_fields")
    @classmethod
    def _json_paths(cls, value: list[str]) -> list[str]:
        for path in value:
            _check_path(path)
        return value

    @model_validator(mode="after")
    def _fields_once(self) -> NormalizationConfig:
        fields = [rule.field for rule in self.array_handling]
        twice = sorted({field for field in fields if fields.count(field) > 1})
        if twice:
            raise ValueError(f"array_handling has more than one rule for field {twice[0]!r}")
        both = sorted(set(fields) & set(self.json_fields))
        if both:
            raise ValueError(
                f"field {both[0]!r} is both in json_fields and in array_handling; keep one"
            )
        return self

    def rule_for(self, path: str) -> ArrayRule | None:
        """The `array_handling` rule of the list at dot path `path`, if any."""
        for rule in self.array_handling:
            if rule.field == path:
                return rule
        return None

    def uses_explode(self) -> bool:
        """Whether any list may be exploded into its parent's rows."""
        return self.enabled and (
            self.strategy == "explode"
            or any(rule.action == "explode" for rule in self.array_handling)
        )

    def check_write_mode(self, write_mode: str) -> str | None:
        """The problem with this section under `write_mode`, or None: exploded lists give
        one key several rows, which a merge would let replace each other.

        :param write_mode: the destination's write mode (`append`, `overwrite`, `merge`).
        :returns: the problem text, or None when the section fits the mode.
        """
        if write_mode != "merge" or not self.uses_explode():
            return None
        if self.strategy == "explode":
            where = "strategy `explode`"
        else:
            field = next(r.field for r in self.array_handling if r.action == "explode")
            where = f"array_handling action `explode` (field {field!r})"
        return (
            f"normalization {where} gives one key several rows, which write mode `merge` "
            "would let replace each other; use `create_table` or `json_column`, or another "
            "write mode"
        )
