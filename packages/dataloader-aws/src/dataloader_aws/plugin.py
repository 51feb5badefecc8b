"""Entry-point module: registers the S3 and DynamoDB state backends.

It gives `PluginRef`s: a backend's module (which imports boto3 only when it connects) is
imported when a recipe names the backend, not when plugins load or other recipes run.
"""

from __future__ import annotations

from typing import Any

from dataloader import PluginRef, hookimpl


@hookimpl
def register_state_backends() -> list[Any]:
    return [
        PluginRef("s3", "dataloader_aws.s3:S3StateBackend"),
        PluginRef("dynamodb", "dataloader_aws.dynamodb:DynamoDBStateBackend"),
    ]
