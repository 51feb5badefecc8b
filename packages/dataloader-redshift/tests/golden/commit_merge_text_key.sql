CREATE TEMPORARY TABLE "_dl_stage_customers_fedcba9876543210" AS SELECT id, first_name, updated_at, _dl_ordinal FROM (SELECT id, first_name, updated_at, _dl_ordinal, ROW_NUMBER() OVER (PARTITION BY first_name, OCTET_LENGTH(first_name) ORDER BY "_dl_ordinal" DESC) AS _dl_rank FROM "_dl_stage_customers_0123456789abcdef") AS ranked WHERE _dl_rank = 1;

DELETE FROM "_dl_stage_customers_0123456789abcdef";

INSERT INTO "_dl_stage_customers_0123456789abcdef" (id, first_name, updated_at, _dl_ordinal) SELECT id, first_name, updated_at, _dl_ordinal FROM "_dl_stage_customers_fedcba9876543210";

DROP TABLE "_dl_stage_customers_fedcba9876543210";

DELETE FROM "dw"."customers" USING "_dl_stage_customers_0123456789abcdef" WHERE "dw"."customers"."first_name" = "_dl_stage_customers_0123456789abcdef"."first_name" AND octet_length("dw"."customers"."first_name") = octet_length("_dl_stage_customers_0123456789abcdef"."first_name");

INSERT INTO "dw"."customers" ("id", "first_name", "updated_at") SELECT "_dl_stage_customers_0123456789abcdef"."id", "_dl_stage_customers_0123456789abcdef"."first_name", "_dl_stage_customers_0123456789abcdef"."updated_at"
FROM "_dl_stage_customers_0123456789abcdef"
WHERE NOT (EXISTS (SELECT *
FROM "dw"."customers"
WHERE "dw"."customers"."first_name" = "_dl_stage_customers_0123456789abcdef"."first_name" AND octet_length("dw"."customers"."first_name") = octet_length("_dl_stage_customers_0123456789abcdef"."first_name")));
