"""Transforms: the API, the pipeline and the core's built-in steps."""

from dataloader.transforms.add_column import AddColumn
from dataloader.transforms.base import Transform, TransformStepConfig
from dataloader.transforms.cast import Cast
from dataloader.transforms.columns import DropColumns, RenameColumns, SelectColumns
from dataloader.transforms.fill_null import FillNull
from dataloader.transforms.filter import Filter
from dataloader.transforms.pipeline import TransformPipeline

BUILTIN_TRANSFORMS: list[type[Transform]] = [
    RenameColumns,
    Cast,
    AddColumn,
    SelectColumns,
    DropColumns,
    Filter,
    FillNull,
]

__all__ = ["BUILTIN_TRANSFORMS", "Transform", "TransformPipeline", "TransformStepConfig"]
