"""Arrow record batches into Postgres over binary COPY (`COPY … FROM STDIN (FORMAT binary)`).

Each value is encoded in Rust, with the GIL released, for the type of the column it lands in
(looked up in the catalog on every write, so a column added or retyped by schema evolution in
the same transaction is seen), a chunk of rows at a time as psycopg2 reads the stream: the
server parses one chunk while the next is encoded, and memory holds one chunk, not the batch.
The table ends up holding exactly what `CsvCopyCodec.write` gives:

- a (column type, target type) pair the encoder does not handle (a domain, an enum, a nested
  list, text into an integer column, …) sends the whole batch through `CsvCopyCodec.write`;
- a value the encoder refuses (an integer out of the column's range, text that is no uuid, …)
  also goes through the CSV path, so the server refuses it with the same error (naming the
  column and line) the CSV codec gets, and the connector reports it the same way.
"""

from __future__ import annotations

import logging
from typing import Any

import pyarrow as pa

from dataloader.normalize.json_text import to_json_text
from dataloader.sql import quote_identifier
from dataloader_postgres.codec import CsvCopyCodec, in_microseconds
from dataloader_rust import _native
from dataloader_rust.arrow_import import importable

log = logging.getLogger(__name__)

COPY_CHUNK = 1 << 20

# Per column of the table: its name, type, typmod, element type (arrays) — and the session's
# zone, which decides how the CSV path's text for a timestamp without zone would be read.
TARGETS_SQL = """
SELECT a.attname, a.atttypid::int8, a.atttypmod,
       CASE WHEN t.typcategory = 'A' AND t.typlen = -1 THEN t.typelem::int8 ELSE 0 END,
       current_setting('TimeZone')
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
"""

UTC_ZONES = frozenset(
    {"utc", "etc/utc", "uct", "etc/uct", "gmt", "etc/gmt", "universal", "etc/universal", "zulu"}
)


def _prepared(array: pa.Array) -> pa.Array:
    """`array` as the encoder takes it: dictionaries decoded, structs and maps as the JSON text
    the CSV path writes for them, offsets arrow-rs would misread rebuilt."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        return _prepared(array.cast(kind.value_type))
    if pa.types.is_struct(kind) or pa.types.is_map(kind):
        return to_json_text(array)
    return importable(array)


def binary_encoder(
    connection: Any, table_sql: str, batch: pa.RecordBatch
) -> tuple[Any | None, str | None]:
    """A `_native.CopyEncoder` streaming `batch` as binary COPY for table `table_sql` (every
    value it could refuse already checked), or None and the reason it does not apply (the CSV
    path then writes the batch).

    :raises ConnectorError: for nanoseconds Postgres cannot store (as the CSV path does).
    """
    batch = in_microseconds(batch)
    cursor = connection.cursor()
    cursor.execute(TARGETS_SQL, (table_sql,))
    rows = cursor.fetchall()
    columns = {name: (oid, typmod, element) for name, oid, typmod, element, _ in rows}
    session_utc = bool(rows) and str(rows[0][4]).lower() in UTC_ZONES
    missing = [name for name in batch.schema.names if name not in columns]
    if missing:
        return None, f"columns {missing} are not in {table_sql}"
    targets = [columns[name] for name in batch.schema.names]
    prepared = pa.RecordBatch.from_arrays(
        [_prepared(array) for array in batch.columns], names=batch.schema.names
    )
    try:
        encoder = _native.copy_encoder(prepared, targets, session_utc)
    except ValueError as exc:
        return None, str(exc)
    if encoder is None:
        return None, _native.unsupported_reason(prepared, targets, session_utc)
    return encoder, None


def write_batch(connection: Any, table_sql: str, batch: pa.RecordBatch) -> None:
    """Append `batch` to `table_sql` (already quoted) inside the open transaction, over binary
    COPY; through `CsvCopyCodec.write` where the binary encoder does not apply (see module)."""
    encoder, reason = binary_encoder(connection, table_sql, batch)
    if encoder is None:
        log.debug("binary COPY into %s: CSV path (%s)", table_sql, reason)
        CsvCopyCodec().write(connection, table_sql, batch)
        return
    columns = ", ".join(quote_identifier(name) for name in batch.schema.names)
    connection.cursor().copy_expert(
        f"COPY {table_sql} ({columns}) FROM STDIN WITH (FORMAT binary)", encoder, size=COPY_CHUNK
    )
