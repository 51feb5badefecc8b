"""The `sequence` source's keys, in a module of their own: pydantic, no pyarrow. The plugin's
`PluginRef` names this model, so `dataloader validate` checks a recipe's keys without importing
the source."""

from __future__ import annotations

from pydantic import Field

from dataloader import ConnectorConfig


class SequenceConfig(ConnectorConfig):
    start: int = 1
    stop: int = Field(ge=0)
    label: str = "row"
