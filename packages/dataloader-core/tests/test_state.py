"""State: the lossless value codec, and the local backend's atomic save, errors and lock."""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dataloader import LocalStateBackend, State, StateError
from dataloader.state.codec import decode_value, encode_value

PARIS = ZoneInfo("Europe/Paris")


def through_json(value: Any) -> Any:
    """Encode, serialise to JSON text and back, decode: what a stored state goes through."""
    return decode_value(json.loads(json.dumps(encode_value(value))))


SAME_VALUE_CASES = [
    pytest.param(datetime(2024, 7, 1, 12, 30, 45, 123456, tzinfo=PARIS), id="datetime-zoneinfo"),
    pytest.param(datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC), id="datetime-utc-1us"),
    pytest.param(
        datetime(2024, 1, 1, 9, 15, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        id="datetime-fixed-offset",
    ),
    pytest.param(datetime(1999, 12, 31, 23, 59, 59, 999999), id="naive-datetime"),
    pytest.param(date(2024, 2, 29), id="date"),
    pytest.param(time(23, 59, 59, 999999), id="time"),
    pytest.param(time(8, 0, 0, 5, tzinfo=timezone(timedelta(hours=-3))), id="time-with-offset"),
    pytest.param(
        Decimal("-12345678901234567890.123456789012345678901234567890"), id="decimal-many-digits"
    ),
    pytest.param(Decimal("1E+30"), id="decimal-exponent"),
    pytest.param(2**64 + 1, id="int-beyond-64-bits"),
    pytest.param(-(2**100), id="negative-huge-int"),
    pytest.param(0.1, id="float"),
    pytest.param(float("inf"), id="float-inf"),
    pytest.param(float("-inf"), id="float-minus-inf"),
    pytest.param(b"\x00\xffbinary\n", id="bytes"),
    pytest.param(timedelta(days=-3, seconds=7, microseconds=11), id="timedelta-negative"),
    pytest.param(timedelta(days=36500, microseconds=1), id="timedelta-long"),
    pytest.param(True, id="bool"),
    pytest.param(None, id="none"),
    pytest.param("$decimal", id="string"),
    pytest.param((1, "a", Decimal("2.5"), (date(2024, 1, 1), None)), id="tuple-nested"),
    pytest.param(
        {
            "files": {
                "a.csv": {"mtime": 1.5, "rows": 3, "complete": True},
                "b.csv": {"at": datetime(2024, 1, 1, tzinfo=PARIS), "key": (1, b"x")},
            },
            "list": [Decimal("1.10"), [time(1, 2), {"deep": 2**70}]],
        },
        id="nested",
    ),
]


@pytest.mark.parametrize("value", SAME_VALUE_CASES)
def test_codec_round_trip_keeps_value_and_type(value: Any) -> None:
    decoded = through_json(value)

    assert decoded == value
    assert type(decoded) is type(value)
    assert repr(decoded) == repr(value)  # same precision, exponent, zone, nesting types


def test_codec_keeps_the_zone_and_the_fold_of_an_ambiguous_local_time() -> None:
    # 2024-10-27 02:30 happens twice in Paris; fold=1 is the second time (UTC+1).
    second = datetime(2024, 10, 27, 2, 30, 0, 250000, tzinfo=PARIS, fold=1)

    decoded = through_json(second)

    assert decoded.tzinfo == PARIS
    assert decoded.utcoffset() == timedelta(hours=1)
    assert decoded.astimezone(UTC) == second.astimezone(UTC)
    assert decoded.microsecond == 250000


def test_codec_keeps_nan() -> None:
    decoded = through_json(float("nan"))

    assert isinstance(decoded, float)
    assert math.isnan(decoded)


def test_codec_refuses_a_type_it_cannot_restore() -> None:
    with pytest.raises(TypeError, match="object"):
        encode_value(object())


def test_state_to_dict_is_json_and_from_dict_restores_every_section() -> None:
    state = State(
        cursor_values={"updated_at": datetime(2024, 5, 17, 12, 0, 0, 999999, tzinfo=PARIS)},
        watermarks={"files": {"a.csv": {"rows": 10, "complete": False}}},
        metadata={"pending": (Decimal("0.1"), b"\x01")},
    )
    state.record_run({"run_id": "r1", "status": "success"})

    restored = State.from_dict(json.loads(json.dumps(state.to_dict())))

    assert restored == state
    assert restored.cursor_values["updated_at"].tzinfo == PARIS


def test_run_history_keeps_the_last_twenty_runs() -> None:
    state = State()
    for number in range(25):
        state.record_run({"run_id": f"r{number}"})

    assert [run["run_id"] for run in state.checkpoints] == [f"r{n}" for n in range(5, 25)]


# -- LocalStateBackend ----------------------------------------------------------------------


def test_local_backend_saves_and_loads_a_state(tmp_path: Path) -> None:
    backend = LocalStateBackend(tmp_path / "state")
    state = State(cursor_values={"id": 2**65, "at": datetime(2024, 1, 1, 0, 0, 0, 7, tzinfo=UTC)})

    backend.save("orders", state.to_dict())

    assert State.from_dict(backend.load("orders")) == state
    assert LocalStateBackend(str(tmp_path / "state")).load("orders") == state.to_dict()
    assert sorted(os.listdir(tmp_path / "state")) == ["orders.json"]


def test_local_backend_load_of_a_never_run_recipe_is_empty(tmp_path: Path) -> None:
    assert LocalStateBackend(tmp_path / "missing").load("orders") == {}


def test_local_backend_save_replaces_the_whole_document(tmp_path: Path) -> None:
    backend = LocalStateBackend(tmp_path)
    backend.save("orders", {"cursor_values": {"a": 1}, "watermarks": {"x": 1}})

    backend.save("orders", {"cursor_values": {"a": 2}})

    assert backend.load("orders") == {"cursor_values": {"a": 2}}


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), TypeError("boom")])
def test_local_backend_failed_save_keeps_the_old_state_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    backend = LocalStateBackend(tmp_path)
    backend.save("orders", {"cursor_values": {"id": 1}})
    real_dump = json.dump

    def dump_half_then_fail(obj: Any, handle: Any, **kwargs: Any) -> None:
        handle.write(json.dumps(obj)[:5])
        raise failure

    monkeypatch.setattr(json, "dump", dump_half_then_fail)
    with pytest.raises((StateError, TypeError)) as raised:
        backend.save("orders", {"cursor_values": {"id": 2}})
    monkeypatch.setattr(json, "dump", real_dump)

    if isinstance(failure, OSError):
        assert raised.type is StateError
        assert "orders.json" in str(raised.value)
    assert backend.load("orders") == {"cursor_values": {"id": 1}}
    assert sorted(os.listdir(tmp_path)) == ["orders.json"]


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "not valid JSON"), ("[1, 2]", "JSON object"), ("", "not valid JSON")],
)
def test_local_backend_corrupt_file_raises_state_error_naming_the_file(
    tmp_path: Path, content: str, message: str
) -> None:
    (tmp_path / "orders.json").write_text(content, encoding="utf-8")

    with pytest.raises(StateError, match=message) as raised:
        LocalStateBackend(tmp_path).load("orders")

    assert str(tmp_path / "orders.json") in str(raised.value)
    assert raised.value.context["file"] == str(tmp_path / "orders.json")


def test_local_backend_second_lock_fails_while_the_first_is_held(tmp_path: Path) -> None:
    first = LocalStateBackend(tmp_path)
    second = LocalStateBackend(tmp_path)

    with first.lock("orders"):
        with pytest.raises(StateError, match="already running") as raised, second.lock("orders"):
            pytest.fail("the second lock must not be granted")
        assert f"pid {os.getpid()}" in str(raised.value)
        with second.lock("customers"):  # another recipe is not blocked
            pass

    with second.lock("orders"):  # released when the first run ended
        pass


def test_local_backend_lock_is_released_when_the_run_fails(tmp_path: Path) -> None:
    backend = LocalStateBackend(tmp_path)

    with pytest.raises(RuntimeError), backend.lock("orders"):
        raise RuntimeError("run failed")

    with backend.lock("orders"):
        pass


def test_local_backend_delete_forgets_the_state(tmp_path: Path) -> None:
    backend = LocalStateBackend(tmp_path)
    backend.save("orders", {"cursor_values": {"id": 1}})

    backend.delete("orders")
    backend.delete("orders")  # deleting twice is fine

    assert backend.load("orders") == {}
