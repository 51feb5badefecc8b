"""The `dataloader` command line."""

from dataloader.cli.app import cli, main

__all__ = ["cli", "main"]
