"""Snowflake source and destination for dataloader: Parquet staged and COPY INTO."""
