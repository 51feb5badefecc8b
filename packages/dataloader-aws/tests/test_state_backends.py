"""The S3 and DynamoDB state backends against moto's server: round trips, conditional writes,
the run lock (held, expired and taken over, released), and the DynamoDB table created on
first use."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from dataloader import State, StateError
from dataloader_aws import DynamoDBStateBackend, S3StateBackend
from dataloader_aws.dynamodb import DynamoDBStateConfig
from dataloader_aws.s3 import S3StateConfig
from dataloader_filestore.testing import MotoServer

SECRET = "aws-Secret-Value-0815-never-printed"
Factory = Callable[..., Any]


def aws_settings(server: MotoServer) -> dict[str, Any]:
    return {**server.settings(), "secret": SECRET}


@pytest.fixture
def table_name() -> str:
    return f"state_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def s3_state(moto_server: MotoServer, s3_bucket: str) -> Factory:
    """`s3_state(**changes)`: a new S3StateBackend (another process, as it were) on one bucket."""

    def _make(**changes: Any) -> S3StateBackend:
        options = {"bucket": s3_bucket, "prefix": "states/", **aws_settings(moto_server)}
        return S3StateBackend(S3StateConfig(**(options | changes)))

    return _make


@pytest.fixture
def dynamodb_state(moto_server: MotoServer, table_name: str) -> Factory:
    """`dynamodb_state(**changes)`: a new DynamoDBStateBackend on a table of its own test."""

    def _make(**changes: Any) -> DynamoDBStateBackend:
        options = {"table": table_name, **aws_settings(moto_server)}
        return DynamoDBStateBackend(DynamoDBStateConfig(**(options | changes)))

    return _make


@pytest.fixture(params=["s3", "dynamodb"])
def backend(request: pytest.FixtureRequest) -> Factory:
    """Either backend's factory: the behaviour both must share."""
    return request.getfixturevalue(f"{request.param}_state")


def document(rows: int) -> dict[str, Any]:
    state = State(
        cursor_values={
            "updated_at": datetime(2024, 5, 17, 12, 30, 1, 123456, tzinfo=UTC),
            "amount": Decimal("12345678901234567890.123456789"),
        },
        watermarks={"files": {"s3://b/a.csv": {"mtime": 1.5, "size": 10, "complete": True}}},
        checkpoints=[{"run_id": "r1", "rows_written": rows, "status": "succeeded"}],
    )
    return state.to_dict()


# -- a fake clock for lock expiry -----------------------------------------------------------------
class FakeClock:
    """`now()` of the backends, moved by the test: expiry without waiting for it."""

    def __init__(self) -> None:
        self.value = 1_000_000.0

    def __call__(self) -> float:
        return self.value


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr("dataloader_aws.s3.now", fake)
    monkeypatch.setattr("dataloader_aws.dynamodb.now", fake)
    return fake


# -- both backends ---------------------------------------------------------------------------
def test_save_and_load_round_trip(backend: Factory) -> None:
    first = backend()
    assert first.load("orders") == {}
    first.save("orders", document(1))
    assert first.load("orders") == document(1)
    first.save("orders", document(2))  # its own earlier write is no conflict

    other = backend()  # another process sees exactly what was saved, types intact
    loaded = other.load("orders")
    assert loaded == document(2)
    restored = State.from_dict(loaded)
    assert restored.cursor_values["amount"] == Decimal("12345678901234567890.123456789")
    assert restored.cursor_values["updated_at"] == datetime(
        2024, 5, 17, 12, 30, 1, 123456, tzinfo=UTC
    )
    assert other.load("customers") == {}  # one document per recipe

    other.delete("orders")
    assert backend().load("orders") == {}


def test_a_held_lock_refuses_a_second_run(backend: Factory) -> None:
    first, second = backend(), backend()
    with first.lock("orders"):
        with pytest.raises(StateError, match="already running") as caught, second.lock("orders"):
            pytest.fail("two holders of one lock")
        assert "orders" in str(caught.value)
        assert SECRET not in str(caught.value)
        with second.lock("customers"):  # other recipes are not blocked
            pass
        first.save("orders", document(1))  # the holder may save


def test_the_lock_is_released_on_exit_and_on_error(backend: Factory) -> None:
    first, second = backend(), backend()
    with first.lock("orders"):
        pass
    with second.lock("orders"):
        pass
    with pytest.raises(RuntimeError), first.lock("orders"):
        raise RuntimeError("the run failed")
    with second.lock("orders"):
        second.save("orders", document(3))
    assert backend().load("orders") == document(3)


def test_an_expired_lock_is_taken_over_and_its_old_holder_cannot_save(
    backend: Factory, clock: FakeClock
) -> None:
    crashed, successor, third = (backend(lock_ttl_seconds=3600) for _ in range(3))
    with ExitStack() as crashed_run:
        crashed_run.enter_context(crashed.lock("orders"))
        crashed.save("orders", document(1))
        with pytest.raises(StateError, match="already running"), successor.lock("orders"):
            pass
        # The holder stops renewing (a frozen process; its heartbeat, every 20 minutes of real
        # time, does not fire here): its lock expires.
        clock.value += 4000

        with successor.lock("orders"):
            # The stale holder comes back: it may not write, before the new holder saved ...
            with pytest.raises(StateError, match="lost the lock"):
                crashed.save("orders", document(98))
            assert backend().load("orders") == document(1)
            successor.save("orders", document(2))
            # ... nor after.
            with pytest.raises(StateError, match="lost the lock"):
                crashed.save("orders", document(99))
            assert backend().load("orders") == document(2)
            # ... and leaving its lock block does not release the successor's lock.
            crashed_run.close()
            with pytest.raises(StateError, match="already running"), third.lock("orders"):
                pass
    with third.lock("orders"):
        pass


# -- S3 ---------------------------------------------------------------------------------------
def test_s3_state_lives_at_prefix_and_recipe(
    s3_state: Factory, moto_server: MotoServer, s3_bucket: str
) -> None:
    state = s3_state()
    with state.lock("orders"):
        keys = [
            o["Key"] for o in moto_server.client("s3").list_objects_v2(Bucket=s3_bucket)["Contents"]
        ]
        assert keys == ["states/orders.lock"]
        state.save("orders", document(1))
    keys = [
        o["Key"] for o in moto_server.client("s3").list_objects_v2(Bucket=s3_bucket)["Contents"]
    ]
    assert keys == ["states/orders.json"]  # the lock object is gone


def test_s3_save_refuses_to_overwrite_a_change_made_since_load(s3_state: Factory) -> None:
    s3_state().save("orders", document(1))
    mine, theirs = s3_state(), s3_state()
    assert mine.load("orders") == document(1)
    theirs.load("orders")
    theirs.save("orders", document(2))  # another writer, between my load and my save
    with pytest.raises(StateError, match="changed by another process") as caught:
        mine.save("orders", document(3))
    assert "s3://" in str(caught.value) and "states/orders.json" in str(caught.value)
    assert s3_state().load("orders") == document(2)

    # After reading the current version it may write again.
    mine.load("orders")
    mine.save("orders", document(4))
    assert s3_state().load("orders") == document(4)


def test_s3_save_refuses_to_overwrite_a_document_created_since_load(s3_state: Factory) -> None:
    mine, theirs = s3_state(), s3_state()
    assert mine.load("orders") == {}
    theirs.save("orders", document(2))
    with pytest.raises(StateError, match="changed by another process"):
        mine.save("orders", document(1))
    assert s3_state().load("orders") == document(2)


def test_s3_missing_bucket_is_a_clear_state_error(s3_state: Factory) -> None:
    state = s3_state(bucket="no-such-state-bucket")
    with pytest.raises(StateError) as caught:
        state.load("orders")
    text = str(caught.value)
    assert "s3 state backend" in text
    assert "s3://no-such-state-bucket/states/orders.json" in text
    assert "NoSuchBucket" in text
    assert SECRET not in text


# -- DynamoDB ---------------------------------------------------------------------------------
def test_dynamodb_table_is_created_on_first_use(
    dynamodb_state: Factory, moto_server: MotoServer, table_name: str
) -> None:
    client = moto_server.client("dynamodb")
    assert table_name not in client.list_tables()["TableNames"]
    state = dynamodb_state()
    assert state.load("orders") == {}
    description = client.describe_table(TableName=table_name)["Table"]
    assert description["KeySchema"] == [{"AttributeName": "recipe", "KeyType": "HASH"}]
    state.save("orders", document(1))
    item = client.get_item(TableName=table_name, Key={"recipe": {"S": "orders"}})["Item"]
    assert item["version"] == {"N": "1"}
    # A second backend finds the table there and uses it.
    assert dynamodb_state().load("orders") == document(1)


def test_dynamodb_without_create_table_names_the_missing_table(dynamodb_state: Factory) -> None:
    state = dynamodb_state(table="no_such_table", create_table=False)
    with pytest.raises(StateError) as caught:
        state.load("orders")
    text = str(caught.value)
    assert "'no_such_table'" in text and "not usable" in text
    assert SECRET not in text


def test_the_lock_of_a_killed_process_on_this_host_is_taken_over_at_once(
    backend: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys

    import dataloader_aws.session as session

    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = finished.stdout.strip()  # that process has exited: its pid is free
    real_owner = session.lock_owner
    monkeypatch.setattr(
        "dataloader_aws.s3.lock_owner",
        lambda: f"{session.socket.gethostname()}:{dead_pid}:dead0000",
    )
    monkeypatch.setattr(
        "dataloader_aws.dynamodb.lock_owner",
        lambda: f"{session.socket.gethostname()}:{dead_pid}:dead0000",
    )
    killed = backend()
    with ExitStack() as stack:
        stack.enter_context(killed.lock("orders"))
        never_released = stack.pop_all()  # kept referenced: the killed run never releases
    monkeypatch.setattr("dataloader_aws.s3.lock_owner", real_owner)
    monkeypatch.setattr("dataloader_aws.dynamodb.lock_owner", real_owner)
    successor = backend()  # default expiry: an hour; the holder is dead, so no wait
    with successor.lock("orders"):
        successor.save("orders", document(2))
    assert backend().load("orders") == document(2)
    assert never_released is not None


def test_a_live_holder_on_this_host_keeps_its_lock(backend: Factory) -> None:
    holder = backend()
    with (
        holder.lock("orders"),
        pytest.raises(StateError, match="already running"),
        backend().lock("orders"),
    ):
        pytest.fail("the lock of a live process was taken over")


def lock_threads() -> list[str]:
    import threading

    return [t.name for t in threading.enumerate() if t.name.startswith("dataloader-lock")]


def test_a_held_lock_is_kept_alive_past_its_ttl_without_a_save(
    backend: Factory, clock: FakeClock
) -> None:
    # A TTL of an hour of fake time: the heartbeat thread (every 20 real minutes) never fires
    # during the test; its renewal is driven by `renew_lock`, what the thread calls.
    holder, other = backend(lock_ttl_seconds=3600), backend(lock_ttl_seconds=3600)
    with holder.lock("orders"):
        assert len(lock_threads()) == 1  # the heartbeat runs while the lock is held
        clock.value += 3000
        holder.renew_lock("orders")
        clock.value += 2000  # past the first expiry: without the renewal it would be free
        with pytest.raises(StateError, match="already running"), other.lock("orders"):
            pytest.fail("the lock of a live run was taken over")
        holder.save("orders", document(1))
    assert lock_threads() == []  # and stops with it


def test_a_renewal_that_finds_the_lock_taken_fails_the_next_save(
    backend: Factory, clock: FakeClock
) -> None:
    holder, successor = backend(lock_ttl_seconds=3600), backend(lock_ttl_seconds=3600)
    with holder.lock("orders"):
        holder.save("orders", document(1))
        clock.value += 4000  # the holder was stuck (no renewal): the lock expired
        with successor.lock("orders"):
            holder.renew_lock("orders")
            with pytest.raises(StateError, match="lost the lock"):
                holder.save("orders", document(99))
            successor.save("orders", document(2))
    assert backend().load("orders") == document(2)
