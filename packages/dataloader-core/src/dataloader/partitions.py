"""Partitions: one source read cut into parts that can be read apart (by other processes or
machines), whose rows together are exactly the rows of the whole read.

A source that can split says how in `plan_partitions(state, count)` and reads one part in
`read_partition(partition, state)` (`dataloader.connectors.BaseConnector`). A `Partition`
travels to whoever reads it, so everything that reader needs beyond the recipe is in its
`spec`, which is plain JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Partition:
    """One part of a source's read.

    :param index: its place in the plan, from 0 (ranges of a key or cursor come in ascending
        order).
    :param label: a short description for people (`3 files, a.csv … c.csv`,
        `id in [1000, 2000)`); never a secret.
    :param estimated_rows: rows it is expected to hold; None when no cheap estimate exists.
    :param estimated_bytes: bytes it is expected to read; None when unknown.
    :param spec: what a reader needs, beside the recipe, to read just this part; JSON only.
    """

    index: int
    label: str
    estimated_rows: int | None = None
    estimated_bytes: int | None = None
    spec: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.index < 0:
            raise ValueError(f"a partition's index is 0 or more, not {self.index}")
        try:
            json.dumps(self.spec, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"partition {self.index}: its spec is not plain JSON ({exc})"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """The partition as JSON-ready data (what `from_dict` takes back)."""
        return {
            "index": self.index,
            "label": self.label,
            "estimated_rows": self.estimated_rows,
            "estimated_bytes": self.estimated_bytes,
            "spec": self.spec,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Partition:
        return cls(
            index=int(data["index"]),
            label=str(data["label"]),
            estimated_rows=data.get("estimated_rows"),
            estimated_bytes=data.get("estimated_bytes"),
            spec=dict(data.get("spec") or {}),
        )


def balanced(sizes: list[int], count: int) -> list[list[int]]:
    """Indexes of `sizes` in at most `count` groups of about equal total: the largest first,
    each into the group with the smallest total so far (ties: the lower group). Never an empty
    group; each group's indexes in ascending order."""
    if count < 1:
        raise ValueError(f"the number of partitions is 1 or more, not {count}")
    groups: list[list[int]] = [[] for _ in range(min(count, len(sizes)))]
    totals = [0] * len(groups)
    for index in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        lightest = min(range(len(groups)), key=lambda g: (totals[g], g))
        groups[lightest].append(index)
        totals[lightest] += sizes[index]
    return [sorted(group) for group in groups]


def total(values: list[int | None]) -> int | None:
    """The sum, or None when any value is unknown."""
    if any(value is None for value in values):
        return None
    return sum(value for value in values if value is not None)
