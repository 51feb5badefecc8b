"""Files as dataloader sources and destinations."""

from dataloader_filestore.connector import FileStoreConfig, FileStoreConnector

__all__ = ["FileStoreConfig", "FileStoreConnector"]
