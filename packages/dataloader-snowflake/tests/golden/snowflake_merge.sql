SELECT TABLE_NAME, COMMENT FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA ILIKE 'PUBLIC' AND STARTSWITH(TABLE_NAME, '_dl_stage_')
CREATE TRANSIENT TABLE "_dl_stage_items_<digest>" ("id" NUMBER(38,0), "version" NUMBER(38,0), "doc" VARCHAR, "__dl_ordinal" NUMBER(38,0)) COMMENT = '{"dataloader_stage": {"recipe": "sf_sql", "table": "items", "run_id": "run-1"}}'
CREATE TEMPORARY STAGE "_dl_stage_files_<digest>"
PUT 'file://<tmp>/part-000001.parquet' @"_dl_stage_files_<digest>"/run-1 AUTO_COMPRESS=FALSE
COPY INTO "_dl_stage_items_<digest>" FROM @"_dl_stage_files_<digest>"/run-1/part-000001.parquet FILE_FORMAT = (TYPE = PARQUET USE_LOGICAL_TYPE = TRUE BINARY_AS_TEXT = FALSE) MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE
CREATE TABLE IF NOT EXISTS "_DATALOADER_STATE" (RECIPE VARCHAR NOT NULL PRIMARY KEY, STATE VARCHAR NOT NULL, UPDATED_AT TIMESTAMP_TZ NOT NULL)
SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA ILIKE 'PUBLIC' AND TABLE_NAME = 'items' ORDER BY ORDINAL_POSITION
CREATE TABLE IF NOT EXISTS "items" ("id" NUMBER(38,0), "version" NUMBER(38,0), "doc" VARIANT)
BEGIN
DELETE FROM "_dl_stage_items_<digest>" AS s WHERE EXISTS (SELECT 1 FROM "items" AS t WHERE t."id" = s."id" AND NOT ((t."version" IS NULL OR (s."version" IS NOT NULL AND s."version" >= t."version"))))
DELETE FROM "items" AS t WHERE EXISTS (SELECT 1 FROM (SELECT * FROM "_dl_stage_items_<digest>" QUALIFY ROW_NUMBER() OVER (PARTITION BY "id" ORDER BY "version" DESC NULLS LAST, "__dl_ordinal" DESC) = 1) AS s WHERE t."id" = s."id" AND (t."version" IS NULL OR (s."version" IS NOT NULL AND s."version" >= t."version")))
INSERT INTO "items" ("id", "version", "doc") SELECT s."id", s."version", PARSE_JSON(s."doc") FROM (SELECT * FROM "_dl_stage_items_<digest>" QUALIFY ROW_NUMBER() OVER (PARTITION BY "id" ORDER BY "version" DESC NULLS LAST, "__dl_ordinal" DESC) = 1) AS s
DELETE FROM "_DATALOADER_STATE" WHERE RECIPE = ?
INSERT INTO "_DATALOADER_STATE" (RECIPE, STATE, UPDATED_AT) VALUES (?, ?, CURRENT_TIMESTAMP())
COMMIT
DROP TABLE IF EXISTS "_dl_stage_items_<digest>"
REMOVE @"_dl_stage_files_<digest>"/run-1/
