COPY "_dl_stage_customers_0123456789abcdef" FROM 's3://acme-stage/dataloader/load_customers/run-1/load-000000/'
WITH CREDENTIALS AS 'aws_iam_role=arn:aws:iam::123456789012:role/dl-copy'
FORMAT AS PARQUET;
