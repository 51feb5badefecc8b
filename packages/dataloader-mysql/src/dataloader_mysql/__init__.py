"""MySQL and MariaDB source, destination and state for dataloader."""
