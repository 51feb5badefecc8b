"""Any SQLAlchemy database as a dataloader source and destination."""
