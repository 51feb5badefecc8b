UNLOAD ('SELECT * FROM "dw"."customers" WHERE "updated_at" > ''2024-01-01 00:00:00+00:00'' ORDER BY "updated_at"') TO 's3://acme-stage/dataloader/load_customers/run-1/load-000000/'
CREDENTIALS 'aws_access_key_id=AKIAIOSFODNN7EXAMPLE;aws_secret_access_key=***'
FORMAT AS PARQUET
ALLOWOVERWRITE
PARALLEL OFF
REGION 'eu-west-1';
