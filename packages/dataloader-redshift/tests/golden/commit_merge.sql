CREATE TABLE IF NOT EXISTS "dw"."_dataloader_state" (recipe VARCHAR(512) NOT NULL, state VARCHAR(65535) NOT NULL, updated_at TIMESTAMP NOT NULL);

LOCK "dw"."_dataloader_state";

COPY "_dl_stage_customers_0123456789abcdef" FROM 's3://acme-stage/dataloader/load_customers/run-1/load-000000/'
WITH CREDENTIALS AS 'aws_iam_role=arn:aws:iam::123456789012:role/dl-copy'
FORMAT AS PARQUET;

CREATE TEMPORARY TABLE "_dl_stage_customers_fedcba9876543210" AS SELECT id, first_name, updated_at, _dl_ordinal FROM (SELECT id, first_name, updated_at, _dl_ordinal, ROW_NUMBER() OVER (PARTITION BY id ORDER BY "updated_at" DESC NULLS LAST, "_dl_ordinal" DESC) AS _dl_rank FROM "_dl_stage_customers_0123456789abcdef") AS ranked WHERE _dl_rank = 1;

DELETE FROM "_dl_stage_customers_0123456789abcdef";

INSERT INTO "_dl_stage_customers_0123456789abcdef" (id, first_name, updated_at, _dl_ordinal) SELECT id, first_name, updated_at, _dl_ordinal FROM "_dl_stage_customers_fedcba9876543210";

DROP TABLE "_dl_stage_customers_fedcba9876543210";

DELETE FROM "dw"."customers" USING "_dl_stage_customers_0123456789abcdef" WHERE "dw"."customers"."id" = "_dl_stage_customers_0123456789abcdef"."id";

INSERT INTO "dw"."customers" ("id", "first_name", "updated_at") SELECT "_dl_stage_customers_0123456789abcdef"."id", "_dl_stage_customers_0123456789abcdef"."first_name", "_dl_stage_customers_0123456789abcdef"."updated_at"
FROM "_dl_stage_customers_0123456789abcdef";

DROP TABLE IF EXISTS "_dl_stage_customers_0123456789abcdef";

DELETE FROM "dw"."_dataloader_state" WHERE recipe = 'load_customers';

INSERT INTO "dw"."_dataloader_state" (recipe, state, updated_at) VALUES ('load_customers', '{"cursor_values": {}}', '2024-05-01 12:00:00');
