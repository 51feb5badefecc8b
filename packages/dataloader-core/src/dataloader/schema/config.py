"""The recipe's `schema:` section: the contract a destination table keeps.

Type names are checked without pyarrow (validate stays light); `dataloader.schema.types`
turns them into Arrow types when a run plans.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SchemaMode = Literal["strict", "lenient", "infer"]
OnViolation = Literal["fail", "quarantine", "drop"]


class ColumnSpec(BaseModel):
    """One `schema.columns[]` entry.

    :param name: the column.
    :param type: a type name of the recipe vocabulary (`int`, `decimal(12,2)`, `timestamptz`,
        `json`, `list<int>`, `struct<a: int, b: string>`, …).
    :param nullable: whether NULL is allowed (default true).
    :param primary_key: part of the table's key: not NULL, unique within a batch.
    :param unique: unique within a batch.
    :param on_violation: overrides `schema.on_violation` for rows that break this column's rules.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    type: str | None = None
    nullable: bool = True
    primary_key: bool = False
    unique: bool = False
    on_violation: OnViolation | None = None

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str | None) -> str | None:
        if value is not None:
            from dataloader.schema.types import parse_type

            parse_type(value)
        return value


class EvolutionConfig(BaseModel):
    """`schema.evolution`: which changes to the destination table a run may make. Unset keys
    follow the mode: `infer` allows new columns, missing columns and widening types; `lenient`
    allows new and missing columns but keeps types (values are cast when lossless); `strict`
    allows none.

    :param allow_new_columns: add a column the rows carry and the table lacks.
    :param allow_column_deletion: accept rows that lack a column of the table (it is kept,
        and NULL in those rows; no column is ever dropped).
    :param allow_type_changes: widen a column's type along the lattice.
    :param allow_float: let integers and decimals widen to float (values may round).
    :param allow_text: let any scalar type widen to string, as the last resort.
    :param naive_timestamps_as_utc: let a timestamp without zone widen to one with a zone,
        reading the naive values as UTC.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow_new_columns: bool | None = None
    allow_column_deletion: bool | None = None
    allow_type_changes: bool | None = None
    allow_float: bool = False
    allow_text: bool = False
    naive_timestamps_as_utc: bool = False


def _check_columns(columns: list[ColumnSpec], strict: bool, where: str) -> None:
    names = [column.name for column in columns]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"{where} names {twice[0]!r} more than once")
    if strict:
        untyped = [column.name for column in columns if column.type is None]
        if untyped:
            raise ValueError(f"mode `strict` needs a `type` for every column: {untyped[0]!r}")


class TableContract(BaseModel):
    """`schema.tables.<name>`: the declared columns of a child table of normalized nested data
    (`normalization:`); the mode, evolution and `on_violation` are the section's.

    :param columns: declared columns, as in `schema.columns`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    columns: list[ColumnSpec] = Field(default_factory=list)


class SchemaConfig(BaseModel):
    """The `schema:` section.

    :param mode: `infer` (default: the table follows the data along the lattice), `lenient`
        (types stay; values are cast when lossless, otherwise they break the contract) or
        `strict` (rows must match `columns` exactly; a run fails before any write otherwise).
    :param columns: declared columns; under `strict` the only ones allowed.
    :param evolution: which changes the destination table may go through.
    :param on_violation: rows that break the contract: `fail` the run, send them to
        `quarantine` (`<table>__quarantine`, with the row as JSON and the rule broken), or
        `drop` them (counted). Unset: `quarantine` under `lenient` where the destination keeps
        a quarantine, `fail` otherwise.
    :param tables: per child table of normalized nested data, its declared columns.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: SchemaMode = "infer"
    columns: list[ColumnSpec] = Field(default_factory=list)
    evolution: EvolutionConfig = Field(default_factory=EvolutionConfig)
    on_violation: OnViolation | None = None
    tables: dict[str, TableContract] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _columns_once(self) -> SchemaConfig:
        strict = self.mode == "strict"
        _check_columns(self.columns, strict, "schema.columns")
        for name, table in self.tables.items():
            _check_columns(table.columns, strict, f"schema.tables.{name}.columns")
        return self

    def for_table(self, name: str, implied: list[ColumnSpec]) -> SchemaConfig:
        """The contract of child table `name`: its declared columns (`tables`) and the
        columns `implied` by the normalization (its keys), under this section's rules."""
        declared = self.tables[name].columns if name in self.tables else []
        known = {column.name for column in declared}
        columns = declared + [column for column in implied if column.name not in known]
        return self.model_copy(update={"columns": columns, "tables": {}})

    def with_implied(self, implied: list[ColumnSpec]) -> SchemaConfig:
        """This contract for the main table, with the columns `implied` by the
        normalization (its row key) declared when the recipe does not declare them."""
        known = {column.name for column in self.columns}
        extra = [column for column in implied if column.name not in known]
        return self.model_copy(update={"columns": self.columns + extra}) if extra else self

    def allows(self, change: Literal["new_columns", "column_deletion", "type_changes"]) -> bool:
        """Whether `evolution` allows a kind of change, set or by the mode's default."""
        value = getattr(self.evolution, f"allow_{change}")
        if value is not None:
            return bool(value)
        if self.mode == "strict":
            return False
        return change != "type_changes" or self.mode == "infer"

    def rule_for(self, column: str, can_quarantine: bool = False) -> OnViolation:
        """What happens to a row that breaks `column`'s rules, given whether the destination
        keeps a quarantine."""
        for spec in self.columns:
            if spec.name == column and spec.on_violation is not None:
                return spec.on_violation
        if self.on_violation is not None:
            return self.on_violation
        return "quarantine" if self.mode == "lenient" and can_quarantine else "fail"
