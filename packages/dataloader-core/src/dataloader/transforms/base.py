"""The transform API: a step that turns one Arrow batch into another."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from dataloader.batch import ArrowBatch
from dataloader.context import RunContext


class TransformStepConfig(BaseModel):
    """Base of every transform's options model (a `transform.steps[]` entry without `type`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Transform(ABC):
    """A transform step. Works on whole columns (pyarrow.compute), never row by row.

    :cvar name: the `type` recipes use.
    :cvar config_model: the pydantic model of the step's options.
    """

    name: ClassVar[str]
    config_model: ClassVar[type[TransformStepConfig]] = TransformStepConfig

    def __init__(self, config: Any) -> None:
        self.config = config

    @abstractmethod
    def apply(self, batch: ArrowBatch, context: RunContext) -> ArrowBatch:
        """Return the transformed batch; raise `TransformError` naming the column on bad data."""
