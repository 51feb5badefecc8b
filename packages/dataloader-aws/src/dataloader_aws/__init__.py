"""S3 and DynamoDB state backends for dataloader.

Names are imported on first use, so loading the plugin (its `plugin` module, inside this
package) does not import the connector's modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dataloader_aws.dynamodb import DynamoDBStateBackend
    from dataloader_aws.s3 import S3StateBackend

_EXPORTS = {
    "DynamoDBStateBackend": "dataloader_aws.dynamodb",
    "S3StateBackend": "dataloader_aws.s3",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


__all__ = [
    "DynamoDBStateBackend",
    "S3StateBackend",
]
