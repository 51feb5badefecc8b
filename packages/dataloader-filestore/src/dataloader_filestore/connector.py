"""`FileStoreConnector`: read files (a file, a directory or a glob) and write part files.

Reading: each batch belongs to one file and carries a checkpoint (file signature and rows done),
so a killed run resumes mid-file and `modified_time` incremental runs read only new or changed
files. Writing: batches fill a part file, under a hidden temporary name, until it holds
`rows_per_file` rows or about `target_file_size` bytes; a full part asks the engine for a
commit, and every commit closes the part being filled, so a part never spans commits. A commit's
parts are recorded in `<dir>/_dataloader/<recipe>.json` together with the recipe's progress,
then renamed into place; an interrupted commit is rolled forward by the next run, and stray
temporary files are removed. Rows that break the recipe's schema contract go to part files of
the sibling directory `<dir>__quarantine`, published by the same commit record as the data.
Child tables of normalized nested data go to sibling directories `<parent of dir>/<child>/`, in
part files written the same way and published by the same record: one commit, every table.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import posixpath
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dataloader import (
    ArrowBatch,
    BaseConnector,
    Capabilities,
    ConnectorError,
    State,
)
from dataloader.parallel import ordered_merge
from dataloader.partitions import Partition, balanced, total
from dataloader.registry import Registration, get_registry
from dataloader.retry import backoff_delay, call_with_retries
from dataloader_filestore import listing
from dataloader_filestore.backends import (
    describe_error,
    is_transient,
    open_filesystem,
)
from dataloader_filestore.compression import (
    TruncatedFile,
    compressing_writer,
    compression_of,
    open_decompressed,
)
from dataloader_filestore.config import DESTINATION_KEYS, FileStoreConfig
from dataloader_filestore.listing import ListedFile, NotFound, require_bucket

if TYPE_CHECKING:
    from dataloader.schema.plan import SchemaPlan

RECORD_DIR = "_dataloader"
MAX_NAME_BYTES = 255  # a path segment: the longest child table (directory) name
QUARANTINE_SUFFIX = "__quarantine"
COMPRESSION_SUFFIX = {"gzip": ".gz", "zstd": ".zst"}
# What follows `<recipe>-` in a part file's name: `<run id>-<part>`, with the engine's run ids
# (`YYYYmmddTHHMMSS-<8 hex>`) and part numbers of five digits or more (`00001`, `123456`).
# Tells this recipe's files from those of `<recipe>-<more>`.
# A plan reads Parquet footers for row estimates up to this many files (one request each).
PARQUET_FOOTERS = 10_000
_PART_AFTER_PREFIX = re.compile(r"\d{8}T\d{6}-[0-9a-f]{8}-\d+(\.|$)")
# What follows `.<recipe>-` in a part a worker of a distributed run staged:
# `staged-<attempt>-<part>`, the attempt being `<partition>-<hex>` (unique to the try, so
# the run id is left out: a staged name is no longer than a single-process part's).
_STAGED_AFTER_PREFIX = re.compile(r"staged-\d+-[0-9a-f]+-\d+\.")
_STAGED_ATTEMPT = re.compile(r"-staged-(\d+)-[0-9a-f]+-\d+\.")


class FileStoreConnector(BaseConnector):
    """Files as a source and a destination."""

    name = "filestore"
    config_model = FileStoreConfig
    capabilities = Capabilities(
        read=True,
        write=True,
        write_modes=("append", "overwrite"),
        incremental=True,
        transactional_state=True,
        resumable=True,
        quarantine=True,
        child_tables=True,
        can_split=True,
        can_stage=True,
        max_identifier_length=MAX_NAME_BYTES,
    )

    def __init__(self, config: FileStoreConfig) -> None:
        super().__init__(config)
        self.fs: Any = None
        self.root = ""
        self._pending: list[tuple[str, str]] = []  # closed parts: (temporary, final) paths
        self._open_parts: dict[str, _Part] = {}  # data parts being filled, by directory
        self._open_quarantine: _Part | None = None
        self._part_full = False  # a part was closed full since the last commit
        self._tables: list[str] = []  # child tables of this recipe, as the record lists them
        # Under overwrite: the child tables whose earlier parts the next commit removes.
        self._replaced: set[str] = set()
        self._part = 0
        self._listing: Iterator[ListedFile] | None = None
        # While a worker stages a partition: the attempt, and the parts it finished.
        self._staging: str | None = None
        self._staged: list[dict[str, Any]] = []

    # -- lifecycle -------------------------------------------------------------------
    def open(self, context: Any) -> None:
        super().open(context)
        self.backend = self.config.resolved_backend
        self.fs, self.root = open_filesystem(
            self.backend, self.config.path, self.config, self.config.storage_options, context.role
        )
        if context.role == "destination":
            if self.config.format is None:
                raise ConnectorError(
                    "a filestore destination needs `format`",
                    key="destination.format",
                    expected="csv, json, jsonl, parquet or a registered format",
                )
            if self.config.allow_empty:
                raise ConnectorError(
                    "`allow_empty` applies to a filestore source, not a destination",
                    file=self._recipe_file(),
                    key="destination.allow_empty",
                    value=self.config.allow_empty,
                    expected="no `allow_empty` under destination",
                )
            self._format_registration(self.config.format)
            self._prepare_destination()
        else:
            for key in sorted(self.config.model_fields_set & set(DESTINATION_KEYS)):
                raise ConnectorError(
                    f"`{key}` applies to a filestore destination, not a source",
                    file=self._recipe_file(),
                    key=f"source.{key}",
                    value=getattr(self.config, key),
                    expected=f"`{key}` under destination, not under source",
                )
        incremental = context.incremental
        if (
            context.role == "source"
            and incremental is not None
            and incremental.strategy != "modified_time"
        ):
            raise ConnectorError(
                "filestore sources are incremental by `modified_time` only",
                key="source.incremental.strategy",
                value=incremental.strategy,
                expected="modified_time",
            )

    def _format_registration(self, name: str) -> Registration:
        try:
            return get_registry().format(name)
        except Exception as exc:
            raise ConnectorError(str(exc), key=f"{self._role()}.format", value=name) from None

    def is_transient(self, error: BaseException) -> bool:
        return is_transient(error)

    def _prepare_destination(self) -> None:
        """Make sure the destination directory (or, on S3, the bucket) exists."""
        try:
            if self.backend == "s3":
                require_bucket(self.fs, self._retrying, self.root.split("/", 1)[0])
            else:
                self._retrying(self.fs.makedirs, self.root, exist_ok=True)
        except NotFound as exc:
            raise self._not_found(exc) from None
        except ConnectorError:
            raise
        except Exception as exc:
            raise self._fail("cannot prepare", self.root, exc) from exc

    def _recipe_file(self) -> str | None:
        recipe_file = self.context.recipe_file if self.context is not None else None
        return str(recipe_file) if recipe_file is not None else None

    def _not_found(self, exc: NotFound) -> ConnectorError:
        return ConnectorError(
            f"{self.backend}: {exc.message}",
            file=self._recipe_file(),
            key=f"{self._role()}.path",
            value=self.config.path,
            context={"backend": self.backend, "path": self.root},
        )

    def _fail(self, action: str, path: str, exc: BaseException) -> ConnectorError:
        """A `ConnectorError` naming the backend, the path and the cause (never a credential)."""
        return ConnectorError(
            f"{self.backend}: {action} {path}: {describe_error(exc)}",
            key=f"{self._role()}.path",
            context={"backend": self.backend, "path": path},
        )

    def _retrying(self, operation: Any, *args: Any, **kwargs: Any) -> Any:
        """Call a filesystem operation, retrying transient failures per `runtime.retries`."""
        policy = self.context.retries if self.context is not None else None
        return call_with_retries(
            operation, *args, policy=policy, is_transient=is_transient, **kwargs
        )

    def _role(self) -> str:
        return self.context.role if self.context else "source"

    def _format(self, path: str) -> Any:
        registration = (
            self._format_registration(self.config.format)
            if self.config.format
            else get_registry().format_for_path(path)
        )
        if registration is None:
            raise ConnectorError(
                f"cannot tell the format of {path!r} from its name",
                key="source.format",
                expected="set `format:` (csv, json, jsonl, parquet, …)",
            )
        return registration.create(
            registration.config_model.model_validate(self.config.format_options)
        )

    # -- source ----------------------------------------------------------------------
    def _list(self) -> Iterator[ListedFile]:
        """The files to read, in path order, listed a page at a time as they are consumed.
        Selecting no file is an error unless `allow_empty`."""
        found = unknown = False
        try:
            for file in listing.iter_files(self.fs, self.backend, self.root, self._retrying):
                if self.config.format is None and get_registry().format_for_path(file.path) is None:
                    unknown = True
                    continue
                found = True
                yield file
        except NotFound as exc:
            raise self._not_found(exc) from None
        except ConnectorError:
            raise
        except Exception as exc:
            raise self._fail("cannot list files under", self.root, exc) from None
        if not found and not self.config.allow_empty:
            raise self._no_files(unknown)

    def _no_files(self, unknown: bool) -> ConnectorError:
        if unknown:
            what = f"no file under {self.root!r} has the extension of a known format"
        elif listing.has_glob(self.root):
            what = f"no file matches the glob {self.root!r}"
        elif self.backend == "s3":
            what = f"path {self.root!r} does not exist (no file has that key or prefix)"
        else:
            what = f"{self.root!r} holds no file to read"
        return ConnectorError(
            f"{self.backend}: {what}",
            file=self._recipe_file(),
            key="source.path",
            value=self.config.path,
            expected=(
                "`format:` for these files"
                if unknown
                else "a path that selects at least one file, or `allow_empty: true` to read "
                "nothing without an error"
            ),
            context={"backend": self.backend, "path": self.root},
        )

    def estimate_rows(self) -> int | None:
        """Rows the listed files hold, for progress: exact from Parquet footers, otherwise the
        total size times the line density of the first 1 MiB of the first file. None if unsure,
        or when the listing is longer than one page (it is not listed ahead of the read)."""
        listed = self._list()
        files = list(itertools.islice(listed, listing.S3_PAGE_SIZE))
        self._listing = itertools.chain(files, listed)  # read_batches goes on from here
        if len(files) == listing.S3_PAGE_SIZE:
            return None
        try:
            if not files:
                return 0
            if all(posixpath.splitext(f.path)[1] in (".parquet", ".pq") for f in files):
                import pyarrow.parquet as pq

                total = 0
                for file in files:
                    with self.fs.open(file.path, "rb") as stream:
                        total += pq.ParquetFile(stream).metadata.num_rows
                return total
            first = files[0]
            with self.fs.open(first.path, "rb") as raw:
                sample = open_decompressed(raw, first.path).read(1 << 20)
            if not sample:
                return None
            lines = max(sample.count(b"\n"), 1)
            if compression_of(first.path) is not None:
                if len(sample) == 1 << 20:
                    return None  # the sample does not tell the compression ratio
                return int(sum(f.size for f in files) * lines / first.size)
            return int(sum(f.size for f in files) * lines / len(sample))
        except Exception:
            return None

    def _to_read(
        self, state: State, listed: Iterator[ListedFile] | None = None
    ) -> Iterator[tuple[ListedFile, int]]:
        """The files a read from `state` reads, in path order, each with the rows of it already
        committed: a file read to its end and unchanged since (same modification time and
        size) is left out, a file read in part is read on after its committed rows, a changed
        one from its start. `listed`: the listing to go on from (else a new one). The one
        selection of `read_batches` and `plan_partitions`."""
        seen: dict[str, Any] = state.watermarks.get("files", {})
        for file in listed if listed is not None else self._list():
            entry = seen.get(file.path)
            same = (
                entry is not None
                and entry.get("mtime") == file.mtime
                and entry.get("size") == file.size
            )
            if same and entry.get("complete"):
                continue
            yield file, int(entry.get("rows", 0)) if same else 0

    def read_batches(self, state: State) -> Iterator[ArrowBatch]:
        """Each new or changed file's batches, in path order; with `runtime.parallelism` > 1
        that many files are read at once (still yielded in order, a few batches ahead each)."""
        listed, self._listing = self._listing, None
        yield from self._read_files(
            (file.path, {"mtime": file.mtime, "size": file.size}, skip)
            for file, skip in self._to_read(state, listed)
        )

    def _read_files(self, files: Iterable[tuple[str, dict[str, Any], int]]) -> Iterator[ArrowBatch]:
        """The batches of `(path, signature, rows to skip)` files in turn, or with
        `runtime.parallelism` > 1 that many at once, still yielded in order."""
        assert self.context is not None
        readers = (partial(self._read_file, *file) for file in files)
        if self.context.parallelism > 1:
            yield from ordered_merge(
                readers, workers=self.context.parallelism, depth=2, name="file"
            )
        else:
            for reader in readers:
                yield from reader()

    # -- source: partitions ----------------------------------------------------------
    def plan_partitions(self, state: State, count: int) -> list[Partition]:
        """The files `read_batches(state)` would read, in at most `count` lists (never more
        than files) of about equal size: the largest file first, each into the lightest list.
        Estimated bytes: the files' sizes; rows: from the footers of Parquet files (at most
        `PARQUET_FOOTERS` of them), else unknown."""
        files = list(self._to_read(state))
        groups = balanced([file.size for file, _ in files], count)
        footers = len(files) <= PARQUET_FOOTERS
        partitions = []
        for index, group in enumerate(groups):
            chosen = [files[i] for i in group]
            rows = [self._parquet_rows(file, skip) if footers else None for file, skip in chosen]
            partitions.append(
                Partition(
                    index=index,
                    label=_files_label([file.path for file, _ in chosen]),
                    estimated_rows=total(rows),
                    estimated_bytes=sum(file.size for file, _ in chosen),
                    spec={
                        "files": [
                            {
                                "path": file.path,
                                "mtime": file.mtime,
                                "size": file.size,
                                "skip": skip,
                            }
                            for file, skip in chosen
                        ]
                    },
                )
            )
        return partitions

    def _parquet_rows(self, file: ListedFile, skip: int) -> int | None:
        """The rows of a Parquet file left to read, from its footer; None for other formats
        or when the footer cannot be read."""
        parquet = (
            self.config.format == "parquet"
            if self.config.format
            else posixpath.splitext(file.path)[1] in (".parquet", ".pq")
        )
        if not parquet:
            return None
        import pyarrow.parquet as pq

        try:
            with self.fs.open(file.path, "rb") as stream:
                return max(pq.ParquetFile(stream).metadata.num_rows - skip, 0)
        except Exception:
            return None

    def read_partition(self, partition: Partition, state: State) -> Iterator[ArrowBatch]:
        """The batches of the partition's files, as `read_batches` reads them (each file after
        the rows the plan's state had committed), with the same checkpoints."""
        yield from self._read_files(
            (entry["path"], {"mtime": entry["mtime"], "size": entry["size"]}, int(entry["skip"]))
            for entry in partition.spec["files"]
        )

    def _read_file(self, path: str, signature: dict[str, Any], skip: int) -> Iterator[ArrowBatch]:
        """The file's batches; a transient failure re-opens it and skips the rows already yielded."""
        assert self.context is not None
        done = skip
        previous: pa.RecordBatch | None = None
        policy = self.context.retries
        attempt = 0

        def batch(data: pa.RecordBatch, rows: int, complete: bool) -> ArrowBatch:
            checkpoint = {"files": {path: {**signature, "rows": rows, "complete": complete}}}
            return ArrowBatch(data, {"source_file": path, "checkpoint": checkpoint})

        while True:
            to_skip = done + (previous.num_rows if previous is not None else 0)
            try:
                with self.fs.open(path, "rb") as raw:
                    stream = open_decompressed(raw, path)
                    for data in self._format(path).read(stream, batch_size=self.context.batch_size):
                        if to_skip:
                            dropped = min(to_skip, data.num_rows)
                            data, to_skip = data.slice(dropped), to_skip - dropped
                            if data.num_rows == 0:
                                continue
                        if previous is not None:
                            done += previous.num_rows
                            yield batch(previous, done, False)
                        previous = data
                break
            except FileNotFoundError as exc:
                raise ConnectorError(
                    f"{self.backend}: file {path} disappeared before it was read",
                    key="source.path",
                    value=self.config.path,
                    context={"backend": self.backend, "path": path},
                ) from exc
            except TruncatedFile as exc:
                raise ConnectorError(
                    f"{self.backend}: file {path} is truncated: {exc}",
                    key="source.path",
                    value=self.config.path,
                    expected="a complete compressed file (is it still being written?)",
                    context={"backend": self.backend, "path": path},
                ) from None
            except ConnectorError:
                raise
            except Exception as exc:
                attempt += 1
                if is_transient(exc) and policy is not None and attempt <= policy.attempts:
                    time.sleep(backoff_delay(policy, attempt))
                    continue
                raise self._fail("cannot read", path, exc) from exc
        if previous is None:
            previous = pa.RecordBatch.from_pylist([])
        yield batch(previous, done + previous.num_rows, True)

    # -- destination -----------------------------------------------------------------
    def _record_path(self) -> str:
        assert self.context is not None
        return posixpath.join(self.root, RECORD_DIR, f"{self.context.recipe_name}.json")

    def _read_record(self) -> dict[str, Any]:
        path = self._record_path()
        if not self.fs.exists(path):
            return {}
        with self.fs.open(path, "rb") as handle:
            return json.loads(handle.read())

    def _write_record(self, record: dict[str, Any]) -> None:
        path = self._record_path()
        tmp = posixpath.join(posixpath.dirname(path), "." + posixpath.basename(path) + ".tmp")
        self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        with self.fs.open(tmp, "wb") as handle:
            handle.write(json.dumps(record, indent=1, sort_keys=True).encode())
            if hasattr(handle, "flush"):
                handle.flush()
            if hasattr(handle, "fileno"):
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    os.fsync(handle.fileno())
        self.fs.mv(tmp, path)

    def _apply_pending(self, record: dict[str, Any]) -> None:
        pending = record.get("pending") or {}
        for tmp, final in pending.get("renames", []):
            if self.fs.exists(tmp):
                self.fs.mv(tmp, final)
        for obsolete in pending.get("deletes", []):
            if self.fs.exists(obsolete):
                self.fs.rm(obsolete)
        if pending:
            record["pending"] = {}
            self._write_record(record)

    def load_state(self) -> State | None:
        record = self._read_record()
        if not record:
            return None
        self._apply_pending(record)
        return State.from_dict(record["state"]) if "state" in record else None

    def reset_state(self) -> None:
        record = self._read_record()
        if record.get("tables"):  # kept: `begin` cleans the child tables' temporary files
            self._write_record({"tables": record["tables"]})
        elif record:
            self.fs.rm(self._record_path())

    def _prefix(self) -> str:
        assert self.context is not None
        return f"{self.context.recipe_name}-"

    def _owns(self, name: str) -> bool:
        """Whether `name` is a part file (hidden or not) this recipe wrote."""
        prefix = self._prefix()
        name = name.removeprefix(".")
        return name.startswith(prefix) and _PART_AFTER_PREFIX.match(name, len(prefix)) is not None

    def _ls(self, path: str) -> list[str]:
        try:
            return list(self._retrying(self.fs.ls, path, detail=False, refresh=True))
        except FileNotFoundError:
            return []
        except TypeError:  # filesystems without `refresh`
            return list(self._retrying(self.fs.ls, path, detail=False))

    def _quarantine_root(self) -> str:
        """The sibling directory of the quarantined rows: `<path>__quarantine`, or
        `<bucket>/_quarantine` for a whole S3 bucket (a sibling would be another bucket)."""
        root = self.root.rstrip("/")
        if self.backend == "s3" and "/" not in root:
            return f"{root}/_quarantine"
        return root + QUARANTINE_SUFFIX

    def begin(self, state: State) -> None:
        assert self.context is not None
        self._tables = list(self._read_record().get("tables", []))
        # A retry is the same run: its new parts are numbered after those it committed.
        this_run = f"{self._prefix()}{self.context.run_id}-"
        children = [self._child_root(table) for table in self._tables]
        for directory in (self.root, self._quarantine_root(), *children):
            for path in self._ls(directory):
                name = posixpath.basename(path)
                if name.startswith(".") and name.endswith(".tmp") and self._owns(name):
                    self.fs.rm(path)
                elif name.startswith(this_run) and self._owns(name):
                    number = re.match(r"\d+", name[len(this_run) :])
                    if number is not None:
                        self._part = max(self._part, int(number.group()))

    def _extension(self) -> str:
        registration = self._format_registration(self.config.format or "")
        extension = (
            registration.extensions[0] if registration.extensions else f".{registration.name}"
        )
        return extension + COMPRESSION_SUFFIX.get(self.config.compression, "")

    def write_batch(self, batch: Any, state: State) -> None:
        """Add the batch to the part being filled, closing each part that becomes full."""
        self._fill(self.root, batch.to_arrow())

    def _fill(self, directory: str, data: pa.RecordBatch) -> None:
        """Add rows to the part being filled in `directory`, closing each part that becomes full."""
        while data.num_rows:
            part = self._open_parts.get(directory)
            if part is not None and not part.schema.equals(data.schema):
                self._close_part(directory)  # a file holds one schema: a new one starts a new part
                part = None
            if part is None:
                part = self._open_parts[directory] = self._start_part(data.schema, directory)
            room = data.num_rows
            if self.config.rows_per_file is not None:
                room = min(room, self.config.rows_per_file - part.rows)
            try:
                part.write(data.slice(0, room))
            except Exception as exc:
                raise self._fail("cannot write", part.tmp, exc) from exc
            data = data.slice(room)
            # Closed when another slice this long would not fit: a full part and a small
            # rest of one batch would otherwise alternate, since every commit closes a part.
            limit = self.config.rows_per_file
            if (limit is not None and part.rows + room > limit) or (
                part.size >= self.config.target_file_size
            ):
                self._close_part(directory)
                self._part_full = True

    def commit_due(self, staged_rows: int) -> bool:
        """A commit is due when a part is full: parts are cut by size, not at every batch."""
        return self._part_full

    def _start_part(self, schema: pa.Schema, directory: str | None = None) -> _Part:
        assert self.context is not None
        self._part += 1
        directory = directory or self.root
        if self._staging is None:
            final_name = (
                f"{self._prefix()}{self.context.run_id}-{self._part:05d}{self._extension()}"
            )
            final = posixpath.join(directory, final_name)
            tmp = posixpath.join(directory, f".{final_name}.tmp")
        else:  # hidden, named by the attempt; whole once it has its staged name
            final = posixpath.join(
                directory,
                f".{self._prefix()}staged-{self._staging}-{self._part:04d}{self._extension()}",
            )
            # An S3 object appears whole when its upload completes, and a rename there is a
            # copy: it is uploaded under its staged name.
            tmp = final if self.backend == "s3" else f"{final}.tmp"
        registration = self._format_registration(self.config.format or "")
        file_format = registration.create(
            registration.config_model.model_validate(self.config.format_options)
        )
        compression = None if self.config.compression == "none" else self.config.compression
        try:
            raw = self._retrying(self.fs.open, tmp, "wb")
            return _Part(tmp, final, raw, compression, file_format, schema)
        except Exception as exc:
            raise self._fail("cannot write", tmp, exc) from exc

    def write_quarantine(self, rows: pa.Table) -> None:
        """Add the rows to the quarantine part being filled (in `<path>__quarantine`, in the
        destination's format), published by the next commit with the data."""
        part = self._open_quarantine
        if part is not None and not part.schema.equals(rows.schema):
            self._close_quarantine()
            part = None
        if part is None:
            directory = self._quarantine_root()
            if self.backend != "s3":
                self._retrying(self.fs.makedirs, directory, exist_ok=True)
            part = self._open_quarantine = self._start_part(rows.schema, directory)
        try:
            for batch in rows.to_batches():
                part.write(batch)
        except Exception as exc:
            raise self._fail("cannot write", part.tmp, exc) from exc

    def _close_quarantine(self) -> None:
        part, self._open_quarantine = self._open_quarantine, None
        self._finish(part)

    def _close_part(self, directory: str) -> None:
        """Finish the part being filled in `directory` (still under its temporary name) for the
        next commit."""
        self._finish(self._open_parts.pop(directory, None))

    # -- destination: child tables ---------------------------------------------------
    def table_name(self) -> str | None:
        """The last segment of the destination directory (`exports/customers` -> `customers`),
        known from the config before `open` too (`preview` asks without opening)."""
        root = self.root or str(self.config.path).replace("\\", "/")
        return posixpath.basename(root.rstrip("/")) or None

    def _child_root(self, table: str) -> str:
        """The child table's directory, `<parent of path>/<table>`; a `ConnectorError` for a
        name that is no directory name of its own, or a path with no sibling directories."""
        root = self.root.rstrip("/")
        if not posixpath.basename(root) or (self.backend == "s3" and "/" not in root):
            raise ConnectorError(
                f"{self.backend}: child tables go into sibling directories of {self.root!r}, "
                "which has none",
                file=self._recipe_file(),
                key="destination.path",
                value=self.config.path,
                expected="a directory inside a bucket or below `/` (e.g. s3://bucket/customers)",
                context={"backend": self.backend, "path": self.root, "table": table},
            )
        quarantine = posixpath.basename(self._quarantine_root())
        problem = None
        if table in ("", ".", "..") or "/" in table or "\0" in table:
            problem = "is not a directory name"
        elif len(table.encode()) > MAX_NAME_BYTES:
            problem = f"is longer than {MAX_NAME_BYTES} bytes"
        elif table in (posixpath.basename(root), quarantine):
            problem = "is the directory of the main table or of its quarantine"
        if problem is not None:
            raise ConnectorError(
                f"{self.backend}: the child table name {table!r} {problem}",
                file=self._recipe_file(),
                key="normalization",
                value=table,
                expected=f"a directory name of at most {MAX_NAME_BYTES} bytes without '/', "
                f"other than {posixpath.basename(root)!r} and {quarantine!r}",
                context={"backend": self.backend, "path": self.root},
            )
        return posixpath.join(posixpath.dirname(root), table)

    def _register(self, table: str) -> None:
        """Add `table` to the record's child tables before its first temporary file, so that a
        later `begin` cleans that directory even if this run dies before its commit."""
        if table in self._tables:
            return
        self._tables.append(table)
        record = self._read_record()
        record["tables"] = sorted({*record.get("tables", []), table})
        try:
            self._retrying(self._write_record, record)
        except Exception as exc:
            raise self._fail("cannot commit files in", self.root, exc) from exc

    def apply_child_schema(self, table: str, plan: SchemaPlan) -> None:
        """Nothing to do: a part file takes the columns of the rows written into it."""
        self._child_root(table)

    def write_child_batch(self, table: str, batch: Any, state: State) -> None:
        """Add rows to the part being filled in the child table's directory, published by the
        next commit with the main table's parts."""
        assert self.context is not None
        directory = self._child_root(table)
        self._register(table)
        if self.backend != "s3":
            self._retrying(self.fs.makedirs, directory, exist_ok=True)
        if self.context.write_mode == "overwrite":
            self._replaced.add(table)
        self._fill(directory, batch.to_arrow())

    def delete_children(self, table: str, root_ids: pa.Array | None) -> None:
        """Under overwrite (`root_ids` None): the next commit removes the child table's parts
        this recipe wrote. Files are never merged, so a deletion by id is refused."""
        if root_ids is not None:
            raise NotImplementedError(
                f"connector {self.name!r} does not merge: child rows cannot be deleted by id"
            )
        self._child_root(table)
        self._replaced.add(table)

    def _finish(self, part: _Part | None) -> None:
        if part is None:
            return
        try:
            part.close()
        except Exception as exc:
            part.discard(self.fs)
            raise self._fail("cannot write", part.tmp, exc) from exc
        if self._staging is None:
            self._pending.append((part.tmp, part.final))
            return
        try:
            if part.tmp != part.final:
                self._retrying(self.fs.mv, part.tmp, part.final)
        except Exception as exc:
            raise self._fail("cannot stage", part.final, exc) from exc
        schema = base64.b64encode(part.schema.serialize().to_pybytes()).decode("ascii")
        self._staged.append({"path": part.final, "rows": part.rows, "schema": schema})

    def commit(self, state: State) -> None:
        assert self.context is not None
        for directory in list(self._open_parts):  # a part never spans commits
            self._close_part(directory)
        self._close_quarantine()
        self._part_full = False
        finals = {final for _, final in self._pending}
        deletes: list[str] = []
        if self.context.write_mode == "overwrite":  # the quarantine of the rows replaced too
            replaced = [self.root, self._quarantine_root()]
            replaced += [self._child_root(table) for table in sorted(self._replaced)]
            for path in itertools.chain.from_iterable(map(self._ls, replaced)):
                name = posixpath.basename(path)
                if (
                    not name.startswith(".")
                    and self._owns(name)
                    and path not in finals
                    and not name.endswith(".tmp")
                ):
                    deletes.append(path)
        record = {
            "state": state.progress(),
            "pending": {"renames": [list(pair) for pair in self._pending], "deletes": deletes},
        }
        if self._tables:
            record["tables"] = sorted(self._tables)
        try:
            self._retrying(self._write_record, record)
            self._pending = []
            self._replaced = set()
            self._retrying(self._apply_pending, record)
        except ConnectorError:
            raise
        except Exception as exc:
            raise self._fail("cannot commit files in", self.root, exc) from exc

    # -- destination: staging for a distributed run ----------------------------------
    def _owns_staged(self, name: str) -> bool:
        """Whether `name` is a part a worker staged (or is staging) for this recipe."""
        prefix = "." + self._prefix()
        return name.startswith(prefix) and _STAGED_AFTER_PREFIX.match(name, len(prefix)) is not None

    def stage_partition(
        self,
        context: Any,
        partition: Partition,
        attempt: str,
        batches: Iterable[Any],
    ) -> dict[str, Any]:
        """Write the partition's rows as hidden parts of this attempt's own in the destination
        directory, with the part writer of a single-process run (parts cut by rows and size,
        compression, format options). Each is written under a temporary name, then renamed to
        its staged name: a staged part is whole. Reports each part's path, rows and Arrow
        schema (IPC, base64), so the driver reads no file before its commit."""
        if self.fs is None:
            self.open(context)
        self._staging, self._staged, self._part = attempt, [], 0
        try:
            for batch in batches:
                self._fill(self.root, batch.to_arrow())
            self._close_part(self.root)
            return {"parts": self._staged}
        except BaseException:
            self.abort()
            raise
        finally:
            self._staging = None

    def staged_schemas(self, staged: list[dict[str, Any]]) -> list[tuple[str, pa.Schema]]:
        """Each reported part's name and schema, from the reports (no file is read)."""
        return [
            (posixpath.basename(part["path"]), _decoded_schema(part["schema"]))
            for report in staged
            for part in report.get("parts", [])
            if part.get("rows")
        ]

    def commit_staged(
        self, staged: list[dict[str, Any]], state: State, schema: pa.Schema | None
    ) -> None:
        """The commit of a single-process run: one record with the state and the renames of
        every reported part to a visible name, numbered as this run's parts (and, under
        overwrite, the removal of the recipe's earlier parts), then the renames. A part keeps
        the types it was staged with: files are not rewritten at the commit."""
        assert self.context is not None
        self._check_staged_where([part["path"] for r in staged for part in r.get("parts", [])])
        if schema is not None and self.config.format == "parquet":
            staged = [{"parts": self._recast(report, schema)} for report in staged]
        for report in staged:
            for part in report.get("parts", []):
                self._part += 1
                final = posixpath.join(
                    posixpath.dirname(part["path"]),
                    f"{self._prefix()}{self.context.run_id}-{self._part:05d}{self._extension()}",
                )
                self._pending.append((part["path"], final))
        self.commit(state)

    def _recast(self, report: dict[str, Any], schema: pa.Schema) -> list[dict[str, Any]]:
        """The report's parts, those whose column types differ from the united `schema`
        written again cast to it (as a single-process run casts each batch to the table),
        under new staged names; the others as they are. Parquet keeps its types, and a
        directory whose parts disagree does not read as one dataset."""
        import pyarrow.parquet as pq

        parts: list[dict[str, Any]] = []
        numbered, self._part = self._part, 0
        try:
            for part in report.get("parts", []):
                staged = _decoded_schema(part["schema"])
                target = pa.schema(
                    [schema.field(name) for name in staged.names if name in schema.names]
                )
                if [f.type for f in staged if f.name in schema.names] == target.types:
                    parts.append(part)
                    continue
                with self.fs.open(part["path"], "rb") as handle:
                    table = pq.read_table(handle).select(target.names).cast(target)
                attempt = _STAGED_ATTEMPT.search(posixpath.basename(part["path"]))
                index = attempt.group(1) if attempt else "0"
                self._staging, self._staged = f"{index}-{uuid.uuid4().hex[:12]}", []
                for batch in table.to_batches():
                    self._fill(self.root, batch)
                self._close_part(self.root)
                parts += self._staged
        except BaseException:
            self.abort()
            raise
        finally:
            self._staging, self._part = None, numbered
        return parts

    def _check_staged_where(self, paths: list[str]) -> None:
        """Refuse parts a worker staged outside the driver's directory (a relative local
        `path` the worker resolved in another working directory), removing those the driver
        can reach."""
        root = posixpath.normpath(self.root)
        astray = [path for path in paths if posixpath.dirname(path) != root]
        if not astray:
            return
        for path in astray:
            if self._owns_staged(posixpath.basename(path)):
                with contextlib.suppress(OSError):
                    self.fs.rm(path)
        path = astray[0]
        raise ConnectorError(
            f"a worker staged {path}, outside the directory the driver commits in "
            f"({self.root}); nothing was committed",
            file=self._recipe_file(),
            key="destination.path",
            value=self.config.path,
            expected="a path the driver and every worker resolve to one directory: an "
            "absolute path on a volume they share, or S3/SFTP",
        )

    def discard_staged(self) -> None:
        """Remove the parts staged for this recipe by any run, whole or not; a commit record's
        renames are applied first, so a reported part is never removed."""
        assert self.context is not None
        record = self._read_record()
        if record.get("pending"):
            self._retrying(self._apply_pending, record)
        for path in self._ls(self.root):
            if self._owns_staged(posixpath.basename(path)):
                try:
                    self._retrying(self.fs.rm, path)
                except FileNotFoundError:
                    pass
                except Exception as exc:
                    raise self._fail("cannot remove", path, exc) from exc

    def abort(self) -> None:
        parts = (*self._open_parts.values(), self._open_quarantine)
        self._open_parts, self._open_quarantine, self._part_full = {}, None, False
        self._replaced = set()
        for part in parts:
            if part is not None and self.fs is not None:
                part.discard(self.fs)
        for tmp, _ in self._pending:
            if self.fs is not None and self.fs.exists(tmp):
                self.fs.rm(tmp)
        self._pending = []

    def close(self) -> None:
        if self._open_parts or self._open_quarantine is not None:
            # a run that ended without commit or abort
            self.abort()
        super().close()


def _decoded_schema(encoded: str) -> pa.Schema:
    """A staged part's Arrow schema from its report (IPC, base64)."""
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(encoded)))


def _files_label(paths: list[str]) -> str:
    """`3 files, a.csv … c.csv`: how many, the first and the last file name."""
    names = [posixpath.basename(path) for path in paths]
    if len(names) == 1:
        return f"1 file, {names[0]}"
    joined = ", " if len(names) == 2 else " … "
    return f"{len(names)} files, {names[0]}{joined}{names[-1]}"


class _CountingWriter:
    """Passes writes on to a file and counts the bytes: the size of a part as it grows. It has
    no `close`: the part closes the file."""

    closed = False

    def __init__(self, raw: Any) -> None:
        self._raw: Any = raw
        self.bytes = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        size = memoryview(data).nbytes
        if self._raw is not None:
            self._raw.write(data)
            self.bytes += size
        return size

    def tell(self) -> int:
        return self.bytes

    def flush(self) -> None:
        if self._raw is not None and not self._raw.closed:
            self._raw.flush()

    def drop(self) -> None:
        """Write nothing more: the part is discarded (a format writer finishing its file when
        it is garbage-collected must not write into a closed file)."""
        self._raw = None


class _Part:
    """A part file being filled under its temporary name: the raw file, the compression around
    it, and the format's writer."""

    def __init__(
        self,
        tmp: str,
        final: str,
        raw: Any,
        compression: str | None,
        file_format: Any,
        schema: pa.Schema,
    ) -> None:
        self.tmp, self.final, self.schema = tmp, final, schema
        self.rows = 0
        self._raw = raw
        self._counter = _CountingWriter(raw)
        self._compressed = (
            compressing_writer(self._counter, compression) if compression is not None else None
        )
        stream = self._compressed if self._compressed is not None else self._counter
        self._writer = file_format.open_writer(stream, schema)

    @property
    def size(self) -> int:
        """Bytes in the file so far, plus those the format holds in memory for it."""
        return self._counter.bytes + self._writer.buffered_bytes

    def write(self, data: pa.RecordBatch) -> None:
        self._writer.write_batch(data)
        self.rows += data.num_rows

    def close(self) -> None:
        self._writer.close()
        if self._compressed is not None:
            self._compressed.close()
        self._raw.close()  # on S3, the upload completes here

    def discard(self, fs: Any) -> None:
        """Drop the part: close what can be closed, remove the temporary file."""
        self._counter.drop()
        with contextlib.suppress(Exception):
            self._raw.close()
        with contextlib.suppress(Exception):
            if fs.exists(self.tmp):
                fs.rm(self.tmp)
