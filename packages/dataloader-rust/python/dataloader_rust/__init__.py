"""Rust accelerator for dataloader."""
