"""Entry-point module: registers the S3 and DynamoDB state backends."""

from __future__ import annotations

from typing import Any

from dataloader import hookimpl
from dataloader_aws.dynamodb import DynamoDBStateBackend
from dataloader_aws.s3 import S3StateBackend


@hookimpl
def register_state_backends() -> list[Any]:
    return [S3StateBackend, DynamoDBStateBackend]
