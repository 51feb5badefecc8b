"""An example third-party dataloader plugin."""
