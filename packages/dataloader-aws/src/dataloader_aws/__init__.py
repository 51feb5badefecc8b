"""S3 and DynamoDB state backends for dataloader.

Names are imported on first use, so loading the plugin (its `plugin` module, inside this
package) does not import the connector's modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dataloader.lazy import lazy_attributes

if TYPE_CHECKING:
    from dataloader_aws.dynamodb import DynamoDBStateBackend
    from dataloader_aws.s3 import S3StateBackend

_EXPORTS = {
    "DynamoDBStateBackend": "dataloader_aws.dynamodb",
    "S3StateBackend": "dataloader_aws.s3",
}


__getattr__ = lazy_attributes(__name__, _EXPORTS)

__all__ = [
    "DynamoDBStateBackend",
    "S3StateBackend",
]
