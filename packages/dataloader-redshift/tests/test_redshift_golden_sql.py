"""The Redshift-only SQL (COPY, UNLOAD) and the statements of each kind of commit, as the
`sqlalchemy-redshift` dialect compiles them, against golden files in tests/golden/.

Each golden file was reviewed by hand against the Amazon Redshift Database Developer Guide:
- COPY: "COPY" (r_COPY.html), "Authorization parameters" (copy-parameters-authorization.html:
  `[WITH] CREDENTIALS [AS] 'aws_iam_role=…'` or `'aws_access_key_id=…;aws_secret_access_key=…'`),
  "COPY from columnar data formats" (copy-usage_notes-copy-from-columnar.html: `FORMAT AS
  PARQUET`; columns matched by position and their number must match; REGION is refused for
  columnar formats, so none is given).
- UNLOAD: "UNLOAD" (r_UNLOAD.html): `UNLOAD ('select') TO 's3://…' CREDENTIALS '…' FORMAT AS
  PARQUET`, `PARALLEL OFF` for files sorted by the query's ORDER BY, `ALLOWOVERWRITE`,
  `REGION 'region'` for a bucket in another region.
- merge: "Performing a merge operation by replacing existing rows"
  (merge-replacing-existing-rows.html) and "Creating a temporary staging table"
  (merge-create-staging-table.html): in one transaction, `DELETE FROM target USING stage WHERE
  target.key = stage.key`, then `INSERT INTO target SELECT … FROM stage`.
- overwrite: "DROP TABLE" and "CREATE TABLE" run inside a transaction block (only TRUNCATE
  commits on its own: "TRUNCATE", r_TRUNCATE.html, hence `DELETE FROM` to empty a table).
- text merge keys: "Character types" (r_Character_types.html, "Significance of trailing
  blanks": trailing blanks are ignored when VARCHARs are compared) and "OCTET_LENGTH function"
  (r_OCTET_LENGTH.html: the length in bytes, trailing blanks counted); a text key is also
  compared, and partitioned, by its OCTET_LENGTH so that 'a' and 'a ' stay two keys.
- COPY and UNLOAD are sent without bind parameters (Redshift takes none in them): literals
  with single quotes and backslashes doubled ("Literals", r_Literals_rules.html; UNLOAD: "If
  your query contains quotation marks … enclose the literal between two sets of single
  quotation marks").
- state: Redshift has no `INSERT … ON CONFLICT`; "LOCK" (r_LOCK.html) holds the table until
  the transaction ends.
None of this SQL has run on a Redshift cluster. Regenerate a file after a deliberate change by
deleting it and running the test once (it then fails, having written the new text to review).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pytest

from dataloader.sql import MergeOrder, TableName
from dataloader_redshift import statements as sql
from dataloader_redshift.config import RedshiftStaging
from dataloader_redshift.statements import Statement

GOLDEN = Path(__file__).parent / "golden"
TARGET = TableName("dw", "customers")
STAGE = TableName(None, "_dl_stage_customers_0123456789abcdef")
KEPT = TableName(None, "_dl_stage_customers_fedcba9876543210")
COLUMNS = ["id", "first_name", "updated_at"]
ROLE = {"s3": "s3://acme-stage/dataloader", "iam_role": "arn:aws:iam::123456789012:role/dl-copy"}
KEYS = {
    "s3": "s3://acme-stage/dataloader",
    "access_key_id": "AKIAIOSFODNN7EXAMPLE",
    "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "region": "eu-west-1",
}
QUERY = (
    'SELECT * FROM "dw"."customers" WHERE "updated_at" > \'2024-01-01 00:00:00+00:00\' '
    'ORDER BY "updated_at"'
)
LOCATION = "s3://acme-stage/dataloader/load_customers/run-1/load-000000/"
SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("first_name", pa.string()),
        pa.field("balance", pa.decimal128(12, 2)),
        pa.field("active", pa.bool_()),
        pa.field("score", pa.float64()),
        pa.field("born", pa.date32()),
        pa.field("updated_at", pa.timestamp("us", tz="UTC")),
        pa.field("seen_at", pa.timestamp("us")),
    ]
)


def shown(statements: list[Statement]) -> str:
    return "\n\n".join(statement.shown() + ";" for statement in statements) + "\n"


def cases() -> dict[str, str]:
    role = RedshiftStaging.model_validate(ROLE)
    keys = RedshiftStaging.model_validate(KEYS)
    order = MergeOrder("updated_at")
    when = datetime(2024, 5, 1, 12, 0, 0)
    state = sql.save_state(TARGET, "load_customers", '{"cursor_values": {}}', when)
    ranking = '"updated_at" DESC NULLS LAST, "_dl_ordinal" DESC'
    return {
        "create_table": shown([sql.create_table(TARGET, SCHEMA)]),
        "copy_parquet_iam_role": shown([sql.copy_parquet(STAGE, LOCATION, role)]),
        "copy_parquet_keys": shown([sql.copy_parquet(STAGE, LOCATION, keys)]),
        "unload_parquet": shown([sql.unload_parquet(QUERY, LOCATION, keys, parallel=False)]),
        "commit_merge": shown(
            [
                sql.create_state_table(TARGET),
                Statement(f"LOCK {sql.state_table(TARGET).sql()}"),
                sql.copy_parquet(STAGE, LOCATION, role),
                *sql.dedup_stage(STAGE, [*COLUMNS, "_dl_ordinal"], ["id"], ranking, kept=KEPT),
                sql.delete_matching(TARGET, STAGE, COLUMNS, ["id"]),
                sql.append_from_stage(TARGET, STAGE, COLUMNS),
                sql.drop_table(STAGE),
                *state,
            ]
        ),
        "commit_merge_dedup_sort": shown(
            [
                sql.delete_matching(TARGET, STAGE, COLUMNS, ["id"], order),
                sql.append_from_stage(TARGET, STAGE, COLUMNS, ["id"]),
            ]
        ),
        "commit_merge_text_key": shown(
            [
                *sql.dedup_stage(
                    STAGE,
                    [*COLUMNS, "_dl_ordinal"],
                    ["first_name"],
                    '"_dl_ordinal" DESC',
                    kept=KEPT,
                    text_keys=["first_name"],
                ),
                sql.delete_matching(TARGET, STAGE, COLUMNS, ["first_name"], None, ["first_name"]),
                sql.append_from_stage(TARGET, STAGE, COLUMNS, ["first_name"], ["first_name"]),
            ]
        ),
        "commit_overwrite": shown(
            [
                sql.drop_table(TARGET),
                sql.create_table(TARGET, pa.schema([SCHEMA.field(name) for name in COLUMNS])),
                sql.append_from_stage(TARGET, STAGE, COLUMNS),
                sql.drop_table(STAGE),
                *state,
            ]
        ),
    }


@pytest.mark.parametrize("name", sorted(cases()))  # computed at collection: no server needed
def test_generated_sql_matches_its_reviewed_golden_file(name: str) -> None:
    text = cases()[name]
    path = GOLDEN / f"{name}.sql"
    if not path.exists():
        path.write_text(text, "utf-8")
        pytest.fail(f"wrote {path.name}: review it against Redshift's documentation")
    assert text == path.read_text("utf-8")


def test_no_golden_file_holds_a_secret() -> None:
    for path in GOLDEN.glob("*.sql"):
        assert KEYS["secret_access_key"] not in path.read_text("utf-8")


@pytest.mark.parametrize("name", ["copy_parquet_keys", "unload_parquet"])
def test_copy_and_unload_execute_their_golden_text_with_the_secret_and_no_parameters(
    name: str,
) -> None:
    keys = RedshiftStaging.model_validate(KEYS)
    statement = {
        "copy_parquet_keys": sql.copy_parquet(STAGE, LOCATION, keys),
        "unload_parquet": sql.unload_parquet(QUERY, LOCATION, keys, parallel=False),
    }[name]
    golden = (GOLDEN / f"{name}.sql").read_text("utf-8")
    assert statement.params == ()
    assert "%s" not in statement.sql and "$1" not in statement.sql
    assert statement.sql + ";\n" == golden.replace("***", KEYS["secret_access_key"])


def test_copy_and_unload_literals_double_quotes_and_backslashes() -> None:
    keys = RedshiftStaging.model_validate(KEYS)
    unload = sql.unload_parquet(r"SELECT 'it''s', 'a\b', '100%'", LOCATION, keys)
    assert unload.sql.startswith(r"UNLOAD ('SELECT ''it''''s'', ''a\\b'', ''100%''') TO ")
    copy = sql.copy_parquet(STAGE, "s3://b/o'k\\/", keys)
    assert r"FROM 's3://b/o''k\\/'" in copy.sql
