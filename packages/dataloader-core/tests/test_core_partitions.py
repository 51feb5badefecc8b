"""`Partition` and the connector defaults: a source that does not say how to split cannot."""

from __future__ import annotations

import json

import pytest

from dataloader import BaseConnector, Capabilities, Partition, State
from dataloader.partitions import balanced, total


def test_a_partition_is_frozen_and_round_trips_through_json() -> None:
    partition = Partition(
        index=2,
        label="id in [1000, 2000)",
        estimated_rows=1000,
        estimated_bytes=64_000,
        spec={"where": "id >= 1000 AND id < 2000", "files": [{"path": "a.csv", "skip": 0}]},
    )
    with pytest.raises(AttributeError):
        partition.index = 3  # type: ignore[misc]
    again = Partition.from_dict(json.loads(json.dumps(partition.to_dict())))
    assert again == partition


def test_a_spec_that_is_not_plain_json_is_refused() -> None:
    with pytest.raises(ValueError, match="not plain JSON"):
        Partition(index=0, label="x", spec={"when": object()})
    with pytest.raises(ValueError, match="not plain JSON"):
        Partition(index=0, label="x", spec={"edge": float("nan")})
    with pytest.raises(ValueError, match="0 or more"):
        Partition(index=-1, label="x")


def test_estimates_default_to_unknown() -> None:
    partition = Partition(index=0, label="everything")
    assert (partition.estimated_rows, partition.estimated_bytes, partition.spec) == (None, None, {})


def test_the_base_connector_cannot_split() -> None:
    class Plain(BaseConnector):
        name = "plain"

    source = Plain(None)
    assert source.plan_partitions(State(), 4) is None
    with pytest.raises(NotImplementedError, match="'plain' cannot read a partition"):
        source.read_partition(Partition(index=0, label="all"), State())
    assert Capabilities().can_split is False
    assert "can-split" in Capabilities(read=True, can_split=True).describe()


def test_balanced_puts_the_largest_first_into_the_lightest_group() -> None:
    sizes = [10, 70, 20, 40, 30, 30]
    groups = balanced(sizes, 3)
    assert groups == [[1], [0, 2, 3], [4, 5]]  # 70 | 40+20+10 | 30+30
    assert sorted(i for group in groups for i in group) == list(range(len(sizes)))
    assert balanced([5, 5], 8) == [[0], [1]]  # never more groups than items, none empty
    assert balanced([], 4) == []
    with pytest.raises(ValueError):
        balanced([1], 0)


def test_total_is_unknown_when_any_part_is() -> None:
    assert total([1, 2, 3]) == 6
    assert total([1, None]) is None
    assert total([]) == 0
