DROP TABLE IF EXISTS "dw"."customers";

CREATE TABLE "dw"."customers" (
	id BIGINT NOT NULL,
	first_name VARCHAR(65535),
	updated_at TIMESTAMPTZ
);

INSERT INTO "dw"."customers" ("id", "first_name", "updated_at") SELECT "_dl_stage_customers_0123456789abcdef"."id", "_dl_stage_customers_0123456789abcdef"."first_name", "_dl_stage_customers_0123456789abcdef"."updated_at"
FROM "_dl_stage_customers_0123456789abcdef";

DROP TABLE IF EXISTS "_dl_stage_customers_0123456789abcdef";

DELETE FROM "dw"."_dataloader_state" WHERE recipe = 'load_customers';

INSERT INTO "dw"."_dataloader_state" (recipe, state, updated_at) VALUES ('load_customers', '{"cursor_values": {}}', '2024-05-01 12:00:00');
