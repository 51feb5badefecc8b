"""PostgreSQL connector and state backend for dataloader."""

from dataloader_postgres.config import PostgresConfig
from dataloader_postgres.connector import PostgresConnector
from dataloader_postgres.state import PostgresStateBackend

__all__ = ["PostgresConfig", "PostgresConnector", "PostgresStateBackend"]
