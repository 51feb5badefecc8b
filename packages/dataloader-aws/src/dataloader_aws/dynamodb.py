"""`DynamoDBStateBackend`: one item per recipe; the lock is a conditional update with expiry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

from dataloader import StateError
from dataloader.state.backend import StateBackendPlugin
from dataloader_aws.session import (
    AwsSettings,
    LockKeeper,
    describe,
    error_code,
    lock_owner,
    now,
    owner_is_dead,
)


class DynamoDBStateConfig(AwsSettings):
    table: str = "dataloader_state"
    create_table: bool = True


class DynamoDBStateBackend(StateBackendPlugin):
    """Items `{recipe, state, version, lock_owner, lock_expires}` in one table (key: `recipe`).

    Saves are conditional on this process holding the recipe's lock (when it holds one), so a
    run whose lock expired and was taken over cannot overwrite the new holder's state. A held
    lock is renewed by a heartbeat every `lock_ttl_seconds / 3`, and by every save.
    """

    name = "dynamodb"
    config_model = DynamoDBStateConfig

    def __init__(self, config: DynamoDBStateConfig) -> None:
        super().__init__(config)
        self._client: Any = None
        self._owners: dict[str, str] = {}
        self._keepers: dict[str, LockKeeper] = {}
        self._table_ready = False

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self.config.client("dynamodb")
        return self._client

    def location(self, recipe_name: str) -> str:
        return f"DynamoDB table {self.config.table!r}, item recipe = {recipe_name!r}"

    def _fail(self, action: str, recipe_name: str, exc: BaseException) -> StateError:
        return StateError(
            f"dynamodb state backend: cannot {action} recipe {recipe_name!r} in table {self.config.table!r}: {describe(exc)}",
            key="state",
        )

    def _ensure_table(self) -> None:
        if self._table_ready:
            return
        try:
            self.client.describe_table(TableName=self.config.table)
        except Exception as exc:
            if error_code(exc) != "ResourceNotFoundException" or not self.config.create_table:
                raise StateError(
                    f"dynamodb state backend: table {self.config.table!r} is not usable: {describe(exc)}",
                    key="state.table",
                ) from None
            try:
                self.client.create_table(
                    TableName=self.config.table,
                    KeySchema=[{"AttributeName": "recipe", "KeyType": "HASH"}],
                    AttributeDefinitions=[{"AttributeName": "recipe", "AttributeType": "S"}],
                    BillingMode="PAY_PER_REQUEST",
                )
                self.client.get_waiter("table_exists").wait(TableName=self.config.table)
            except Exception as create_exc:
                if error_code(create_exc) != "ResourceInUseException":
                    raise StateError(
                        f"dynamodb state backend: cannot create table {self.config.table!r}: {describe(create_exc)}",
                        key="state.table",
                    ) from None
        self._table_ready = True

    def load(self, recipe_name: str) -> dict[str, Any]:
        self._ensure_table()
        try:
            item = self.client.get_item(
                TableName=self.config.table, Key={"recipe": {"S": recipe_name}}, ConsistentRead=True
            ).get("Item")
        except Exception as exc:
            raise self._fail("read", recipe_name, exc) from None
        if not item or "state" not in item:
            return {}
        return json.loads(item["state"]["S"])

    def save(self, recipe_name: str, state: dict[str, Any]) -> None:
        self._ensure_table()
        values: dict[str, Any] = {
            ":state": {"S": json.dumps(state, sort_keys=True)},
            ":one": {"N": "1"},
            ":zero": {"N": "0"},
        }
        update = "SET #state = :state, version = if_not_exists(version, :zero) + :one"
        condition = None
        owner = self._owners.get(recipe_name)
        keeper = self._keepers.get(recipe_name)
        if keeper is not None and keeper.lost:
            raise self._lost(recipe_name)
        if owner is not None:
            values[":owner"] = {"S": owner}
            values[":expires"] = {"N": str(now() + self.config.lock_ttl_seconds)}
            update += ", lock_expires = :expires"
            condition = "lock_owner = :owner"
        try:
            self.client.update_item(
                TableName=self.config.table,
                Key={"recipe": {"S": recipe_name}},
                UpdateExpression=update,
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=values,
                **({"ConditionExpression": condition} if condition else {}),
            )
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise self._lost(recipe_name) from None
            raise self._fail("write", recipe_name, exc) from None

    def _lost(self, recipe_name: str) -> StateError:
        return StateError(
            f"dynamodb state backend: lost the lock of recipe {recipe_name!r} (it expired and another run took it); not overwriting its state",
            key="state",
        )

    def _extend_lock(self, recipe_name: str) -> bool:
        """Push the held lock's expiry out by `lock_ttl_seconds`; False when it is not ours."""
        owner = self._owners.get(recipe_name)
        if owner is None:
            return True
        try:
            self.client.update_item(
                TableName=self.config.table,
                Key={"recipe": {"S": recipe_name}},
                UpdateExpression="SET lock_expires = :expires",
                ConditionExpression="lock_owner = :owner",
                ExpressionAttributeValues={
                    ":owner": {"S": owner},
                    ":expires": {"N": str(now() + self.config.lock_ttl_seconds)},
                },
            )
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise self._fail("renew the lock of", recipe_name, exc) from None
        return True

    def renew_lock(self, recipe_name: str) -> None:
        """Renew the recipe's held lock now, as its heartbeat does every `lock_ttl_seconds / 3`."""
        self._keepers[recipe_name].beat()

    def delete(self, recipe_name: str) -> None:
        self._ensure_table()
        try:
            self.client.update_item(
                TableName=self.config.table,
                Key={"recipe": {"S": recipe_name}},
                UpdateExpression="REMOVE #state, version",
                ExpressionAttributeNames={"#state": "state"},
            )
        except Exception as exc:
            raise self._fail("delete the state of", recipe_name, exc) from None

    @contextmanager
    def lock(self, recipe_name: str) -> Iterator[None]:
        self._ensure_table()
        owner = lock_owner()
        condition, values = "attribute_not_exists(lock_owner) OR lock_expires < :now", {}
        for _ in range(2):
            current = now()
            try:
                self.client.update_item(
                    TableName=self.config.table,
                    Key={"recipe": {"S": recipe_name}},
                    UpdateExpression="SET lock_owner = :owner, lock_expires = :expires",
                    ConditionExpression=condition,
                    ExpressionAttributeValues={
                        ":owner": {"S": owner},
                        ":expires": {"N": str(current + self.config.lock_ttl_seconds)},
                        ":now": {"N": str(current)},
                        **values,
                    },
                )
                break
            except Exception as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise self._fail("lock", recipe_name, exc) from None
            item = self.client.get_item(
                TableName=self.config.table, Key={"recipe": {"S": recipe_name}}, ConsistentRead=True
            ).get("Item", {})
            holder = item.get("lock_owner", {}).get("S", "another run")
            if owner_is_dead(holder):  # a killed run on this host: take its lock over
                condition = (
                    "lock_owner = :stale OR attribute_not_exists(lock_owner) OR lock_expires < :now"
                )
                values = {":stale": {"S": holder}}
                continue
            until = datetime.fromtimestamp(
                float(item.get("lock_expires", {}).get("N", "0")), UTC
            ).isoformat()
            raise StateError(
                f"recipe {recipe_name!r} is already running (DynamoDB lock in table {self.config.table!r} held by {holder} until {until}); two runs of one recipe never interleave",
                key="state",
            )
        else:
            raise StateError(
                f"recipe {recipe_name!r} is already running (its DynamoDB lock changed while taking it)",
                key="state",
            )
        self._owners[recipe_name] = owner
        keeper = self._keepers[recipe_name] = LockKeeper(
            f"the DynamoDB lock of recipe {recipe_name!r} in table {self.config.table!r}",
            lambda: self._extend_lock(recipe_name),
            self.config.lock_ttl_seconds / 3,
        ).start()
        try:
            yield
        finally:
            keeper.stop()
            del self._keepers[recipe_name]
            self._owners.pop(recipe_name, None)
            with suppress(Exception):  # the lock expired and is someone else's now
                self.client.update_item(
                    TableName=self.config.table,
                    Key={"recipe": {"S": recipe_name}},
                    UpdateExpression="REMOVE lock_owner, lock_expires",
                    ConditionExpression="lock_owner = :owner",
                    ExpressionAttributeValues={":owner": {"S": owner}},
                )
