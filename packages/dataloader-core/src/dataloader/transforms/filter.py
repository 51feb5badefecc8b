"""The `filter` transform: keep rows matching a small, safe expression language.

Expressions use Python syntax but are never evaluated as Python: they are translated into
Arrow compute expressions. Supported: column names, literals (numbers, strings, True, False,
None), comparisons (== != < <= > >=), `in` / `not in` a list, `is None` / `is not None`,
`and`, `or`, `not`, and parentheses.
"""

from __future__ import annotations

import ast
import operator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import field_validator

from dataloader.batch import ArrowBatch
from dataloader.context import RunContext
from dataloader.errors import TransformError
from dataloader.transforms.base import Transform, TransformStepConfig

_COMPARISONS: dict[type[ast.cmpop], Any] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}


def compile_expression(text: str) -> pc.Expression:
    """Translate a filter expression into an Arrow compute expression; `ValueError` if unsupported."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"cannot parse {text!r}: {exc.msg}") from exc
    return _translate(tree.body)


def _literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
    ):
        return -node.operand.value
    raise ValueError(f"expected a literal value, got {ast.unparse(node)!r}")


def _operand(node: ast.expr) -> Any:
    if isinstance(node, ast.Name):
        return pc.field(node.id)
    return pc.scalar(_literal(node))


def _translate(node: ast.expr) -> pc.Expression:
    if isinstance(node, ast.BoolOp):
        parts = [_translate(value) for value in node.values]
        combine = operator.and_ if isinstance(node.op, ast.And) else operator.or_
        result = parts[0]
        for part in parts[1:]:
            result = combine(result, part)
        return result
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return ~_translate(node.operand)
    if isinstance(node, ast.Compare):
        result: pc.Expression | None = None
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            part = _comparison(left, op, right)
            result = part if result is None else result & part
            left = right
        assert result is not None
        return result
    if isinstance(node, ast.Name):
        return pc.field(node.id)
    raise ValueError(f"unsupported expression {ast.unparse(node)!r}")


def _comparison(left: ast.expr, op: ast.cmpop, right: ast.expr) -> pc.Expression:
    if isinstance(op, (ast.Is, ast.IsNot)):
        if not (isinstance(right, ast.Constant) and right.value is None):
            raise ValueError("`is` only compares with None")
        test = _operand(left).is_null()
        return test if isinstance(op, ast.Is) else ~test
    if isinstance(op, (ast.In, ast.NotIn)):
        if not isinstance(right, (ast.List, ast.Tuple, ast.Set)):
            raise ValueError("`in` needs a list of literals")
        values = pa.array([_literal(item) for item in right.elts])
        test = _operand(left).isin(values)
        return test if isinstance(op, ast.In) else ~test
    compare = _COMPARISONS.get(type(op))
    if compare is None:
        raise ValueError(f"unsupported operator {type(op).__name__}")
    return compare(_operand(left), _operand(right))


class FilterConfig(TransformStepConfig):
    expression: str

    @field_validator("expression")
    @classmethod
    def _compiles(cls, value: str) -> str:
        compile_expression(value)
        return value


class Filter(Transform):
    """Keep the rows for which `expression` is true (null counts as false)."""

    name = "filter"
    config_model = FilterConfig

    def __init__(self, config: FilterConfig) -> None:
        super().__init__(config)
        self.expression = compile_expression(config.expression)

    def apply(self, batch: ArrowBatch, context: RunContext) -> ArrowBatch:
        table = pa.Table.from_batches([batch.to_arrow()])
        try:
            filtered = table.filter(self.expression)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, KeyError) as exc:
            raise TransformError(
                f"filter: cannot evaluate {self.config.expression!r} on columns {batch.columns}: {exc}",
                key="expression",
            ) from exc
        return batch.with_data(filtered)
