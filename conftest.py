"""Fixtures shared by every test in the workspace: the real services tests run against."""

pytest_plugins = [
    "dataloader_postgres.testing",
    "dataloader_filestore.testing",
    "dataloader_mysql.testing",
]
