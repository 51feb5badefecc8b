"""`TransformPipeline`: the recipe's steps applied in order to each batch."""

from __future__ import annotations

from collections.abc import Sequence

from dataloader.batch import ArrowBatch
from dataloader.context import RunContext
from dataloader.errors import TransformError
from dataloader.transforms.base import Transform


class TransformPipeline:
    """Applies steps in order; a failure names the step's index and type."""

    def __init__(self, steps: Sequence[Transform]) -> None:
        self.steps = list(steps)

    def apply(self, batch: ArrowBatch, context: RunContext) -> ArrowBatch:
        if batch.row_count == 0 and not batch.columns:
            # Neither rows nor columns (e.g. the checkpoint of an empty file): nothing to transform.
            return batch
        for index, step in enumerate(self.steps):
            try:
                batch = step.apply(batch, context)
            except TransformError as exc:
                key = f"transform.steps[{index}]" + (
                    f".{exc.problem.key}" if exc.problem.key else ""
                )
                raise TransformError(
                    f"step {index} ({step.name}) failed: {exc.problem.message}",
                    file=str(context.recipe_file) if context.recipe_file else None,
                    key=key,
                    context={**exc.context, "step": index, "type": step.name},
                ) from exc
            except Exception as exc:
                raise TransformError(
                    f"step {index} ({step.name}) failed: {type(exc).__name__}: {exc}",
                    file=str(context.recipe_file) if context.recipe_file else None,
                    key=f"transform.steps[{index}]",
                    context={"step": index, "type": step.name},
                ) from exc
        return batch
