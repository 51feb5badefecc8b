"""Fixtures shared by every test in the workspace: the real services tests run against.

Property tests draw the same examples on every run (a fixed seed, no example database): a
test that passes here passes on a fresh clone, and one that fails fails again."""

from hypothesis import settings

pytest_plugins = [
    "dataloader_postgres.testing",
    "dataloader_filestore.testing",
    "dataloader_mysql.testing",
]

settings.register_profile("deterministic", derandomize=True, database=None)
settings.load_profile("deterministic")
