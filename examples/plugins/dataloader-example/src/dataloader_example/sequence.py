"""The `sequence` source: numbered rows, read incrementally on `id`."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from dataloader import ArrowBatch, BaseConnector, Capabilities, State
from dataloader_example.config import SequenceConfig


class SequenceSource(BaseConnector):
    """Rows `id` from `start` to `stop` (inclusive) with `label` = "<label>-<id>"."""

    name = "sequence"
    config_model = SequenceConfig
    capabilities = Capabilities(read=True, incremental=True)

    def read_batches(self, state: State) -> Iterator[ArrowBatch]:
        assert self.context is not None
        start = self.config.start
        incremental = self.context.incremental
        if incremental is not None and incremental.cursor_column in state.cursor_values:
            start = max(start, int(state.cursor_values[incremental.cursor_column]) + 1)
        step = self.context.batch_size
        for low in range(start, self.config.stop + 1, step):
            ids = pa.array(range(low, min(low + step, self.config.stop + 1)), type=pa.int64())
            labels = pc.binary_join_element_wise(self.config.label, pc.cast(ids, pa.string()), "-")
            yield ArrowBatch(pa.RecordBatch.from_arrays([ids, labels], names=["id", "label"]))

    def estimate_rows(self) -> int | None:
        return max(0, self.config.stop - self.config.start + 1)
