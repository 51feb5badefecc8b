DELETE FROM "dw"."customers" USING "_dl_stage_customers_0123456789abcdef" WHERE "dw"."customers"."id" = "_dl_stage_customers_0123456789abcdef"."id" AND ("dw"."customers"."updated_at" IS NULL OR ("_dl_stage_customers_0123456789abcdef"."updated_at" IS NOT NULL AND "_dl_stage_customers_0123456789abcdef"."updated_at" >= "dw"."customers"."updated_at"));

INSERT INTO "dw"."customers" ("id", "first_name", "updated_at") SELECT "_dl_stage_customers_0123456789abcdef"."id", "_dl_stage_customers_0123456789abcdef"."first_name", "_dl_stage_customers_0123456789abcdef"."updated_at"
FROM "_dl_stage_customers_0123456789abcdef"
WHERE NOT (EXISTS (SELECT *
FROM "dw"."customers"
WHERE "dw"."customers"."id" = "_dl_stage_customers_0123456789abcdef"."id"));
