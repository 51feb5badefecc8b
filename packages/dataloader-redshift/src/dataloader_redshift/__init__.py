"""Redshift destination and source for dataloader (experimental): Parquet on S3 and COPY."""
