"""Entry-point module: registers the S3 and DynamoDB state backends.

The backends' modules are imported when the registry asks for them, not when plugins load.
"""

from __future__ import annotations

from typing import Any

from dataloader import hookimpl


@hookimpl
def register_state_backends() -> list[Any]:
    from dataloader_aws.dynamodb import DynamoDBStateBackend
    from dataloader_aws.s3 import S3StateBackend

    return [S3StateBackend, DynamoDBStateBackend]
