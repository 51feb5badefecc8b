COPY "_dl_stage_customers_0123456789abcdef" FROM 's3://acme-stage/dataloader/load_customers/run-1/load-000000/'
WITH CREDENTIALS AS 'aws_access_key_id=AKIAIOSFODNN7EXAMPLE;aws_secret_access_key=***'
FORMAT AS PARQUET;
