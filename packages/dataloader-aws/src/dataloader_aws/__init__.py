"""S3 and DynamoDB state backends for dataloader."""

from dataloader_aws.dynamodb import DynamoDBStateBackend
from dataloader_aws.s3 import S3StateBackend

__all__ = ["DynamoDBStateBackend", "S3StateBackend"]
