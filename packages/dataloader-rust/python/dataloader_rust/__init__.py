"""The Rust accelerator for dataloader: binary COPY for the `postgres` connector and row
hashing for the core, filling the accelerator slots its entry point declares (`plugin.py`)."""

from dataloader_rust._native import __version__

__all__ = ["__version__"]
