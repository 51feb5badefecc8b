"""Which files a source path names, listed a page (or a directory) at a time.

A prefix of millions of objects is never held in memory: S3 is read one `ListObjectsV2` page
(up to `S3_PAGE_SIZE` keys) at a time, local disks and SFTP one directory at a time, and the
files are yielded as they come, in the same order on every backend: full-path byte order, the
order of S3's keys. Files whose name, or a directory between the listed path and them, starts
with `.` or `_` are left out (temporary files, `_dataloader/`).
"""

from __future__ import annotations

import itertools
import posixpath
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

S3_PAGE_SIZE = 1000
_GLOB_CHARS = frozenset("*?[")

Call = Callable[..., Any]
"""Runs a filesystem operation (the connector's, which retries transient failures)."""


class NotFound(Exception):
    """The listed path names no file, directory or prefix (or, on S3, its bucket is missing)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ListedFile:
    """A file to read: its path in the filesystem, modification time (epoch seconds) and size."""

    path: str
    mtime: float
    size: int


def has_glob(path: str) -> bool:
    """Whether `path` has a wildcard (`*`, `?`, `[`)."""
    return not _GLOB_CHARS.isdisjoint(path)


def iter_files(fs: Any, backend: str, root: str, call: Call) -> Iterator[ListedFile]:
    """The files under `root` (a file, a directory or prefix, or a glob), in path order.

    Raises `NotFound` for what does not exist: a local or SFTP path, the directory a glob
    starts from, an S3 bucket. An S3 prefix with no key lists nothing (S3 has no directories);
    whether an empty listing is an error is the caller's decision."""
    if backend == "s3":
        return _s3_files(fs, root, call)
    return _tree_files(fs, root, call)


def _is_hidden(relative: str) -> bool:
    """Whether a path relative to the listed directory has a part starting with `.` or `_`."""
    return any(part.startswith((".", "_")) for part in relative.split("/") if part)


def _glob_base(pattern: str) -> str:
    """The directory part of a glob before its first wildcard: `a/b/*/c*.csv` → `a/b`."""
    parts = pattern.split("/")
    literal = next(i for i, part in enumerate(parts) if has_glob(part))
    return "/".join(parts[:literal])


def _glob_depth(pattern: str, base: str) -> int | None:
    """How many directory levels below `base` the glob reaches; None with `**`."""
    if "**" in pattern:
        return None
    return pattern[len(base) :].strip("/").count("/") + 1


def _mtime(info: dict[str, Any]) -> float:
    value = info.get("mtime", info.get("LastModified", info.get("last_modified", 0)))
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    return float(value or 0)


def _glob_matcher(pattern: str) -> Callable[[str], re.Match[str] | None]:
    """A match of full paths against `pattern`, as fsspec globs them (fsspec is imported
    here: recipes are validated, and `has_glob` asked, without it)."""
    from fsspec.utils import glob_translate

    return re.compile(glob_translate(pattern)).match


# -- S3: ListObjectsV2, a page at a time -----------------------------------------------------
def _s3_files(fs: Any, root: str, call: Call) -> Iterator[ListedFile]:
    bucket, _, key = root.partition("/")
    if has_glob(key):
        base = _glob_base(key)
        match = _glob_matcher(root)
        nested = _glob_depth(key, base) != 1
        literal = re.split(r"[*?\[]", key, maxsplit=1)[0]  # S3 prefixes need not end in `/`
        found = False
        for file in _s3_pages(fs, call, bucket, literal, nested):
            if match(file.path) and not _is_hidden(file.path[len(bucket) + len(base) + 1 :]):
                found = True
                yield file
        if not found:
            require_bucket(fs, call, bucket)  # a missing bucket is an error, not an empty match
        return
    prefix = key + "/" if key else ""
    pages = _s3_pages(fs, call, bucket, prefix, nested=True)
    first = next(pages, None)
    if first is None:
        if key:
            head = _s3_head(fs, call, bucket, key)
            if head is not None:
                yield head
                return
        require_bucket(fs, call, bucket)  # an empty prefix lists nothing: S3 has no directories
        return
    for file in itertools.chain([first], pages):
        if not _is_hidden(file.path[len(bucket) + len(prefix) + 1 :]):
            yield file


def _s3_pages(fs: Any, call: Call, bucket: str, prefix: str, nested: bool) -> Iterator[ListedFile]:
    """Every object under `prefix` (only its direct children unless `nested`), page by page.
    Directory markers (keys ending in `/`) are not files."""
    request: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": S3_PAGE_SIZE}
    if not nested:
        request["Delimiter"] = "/"
    while True:
        page = call(fs.call_s3, "list_objects_v2", **request)
        for item in page.get("Contents", ()):
            if not item["Key"].endswith("/"):
                yield ListedFile(f"{bucket}/{item['Key']}", _mtime(item), int(item.get("Size", 0)))
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            return
        request["ContinuationToken"] = token


def _s3_head(fs: Any, call: Call, bucket: str, key: str) -> ListedFile | None:
    try:
        head = call(fs.call_s3, "head_object", Bucket=bucket, Key=key)
    except FileNotFoundError:
        return None
    return ListedFile(f"{bucket}/{key}", _mtime(head), int(head.get("ContentLength", 0)))


def require_bucket(fs: Any, call: Call, bucket: str) -> None:
    """Raise `NotFound` unless the bucket exists. (s3fs's `exists` answers False for any
    error, a 503 or a refused connection too, so ask S3 itself.)"""
    try:
        call(fs.call_s3, "head_bucket", Bucket=bucket)
    except FileNotFoundError:
        raise NotFound(
            f"bucket {bucket!r} does not exist (or is not visible with these credentials)"
        ) from None


# -- local disk and SFTP: a directory at a time ---------------------------------------------
def _tree_files(fs: Any, root: str, call: Call) -> Iterator[ListedFile]:
    if has_glob(root):
        if not _glob_base(root) and not root.startswith("/"):
            root = "./" + root  # e.g. `*.csv` on SFTP: in the login directory
        base = _glob_base(root) or "/"
        match = _glob_matcher(root)
        depth = _glob_depth(root, base)
        if not call(fs.isdir, base):
            raise NotFound(f"directory {base!r} of the glob {root!r} does not exist")
        for file in _walk(fs, call, base, depth):
            if match(file.path):
                yield file
        return
    if call(fs.isdir, root):
        yield from _walk(fs, call, root, None)
    elif call(fs.exists, root):
        info = call(fs.info, root)
        if info.get("type") == "file":
            yield ListedFile(root, _mtime(info), int(info.get("size") or 0))
    else:
        raise NotFound(f"path {root!r} does not exist")


def _walk(fs: Any, call: Call, directory: str, depth: int | None) -> Iterator[ListedFile]:
    """The files below `directory`, `depth` levels deep at most, skipping hidden names."""
    try:
        entries = call(fs.ls, directory, detail=True)
    except FileNotFoundError:
        return  # removed while we were listing
    for info in sorted(entries, key=_path_order):
        path = info["name"].rstrip("/")
        name = posixpath.basename(path)
        if path == directory.rstrip("/") or name.startswith((".", "_")):
            continue
        if info.get("type") == "directory":
            if depth is None or depth > 1:
                yield from _walk(fs, call, path, None if depth is None else depth - 1)
        elif info.get("type") == "file":
            yield ListedFile(path, _mtime(info), int(info.get("size") or 0))


def _path_order(entry: dict[str, Any]) -> str:
    """Sort key of a directory entry that walks a tree in full-path order, as S3 lists keys: a
    directory sorts as its name and `/`, so `a-b.csv` (`-` < `/`) comes before `a/x.csv`.
    (Code-point order of `str` is the byte order of UTF-8.)"""
    name = posixpath.basename(entry["name"].rstrip("/"))
    return name + "/" if entry.get("type") == "directory" else name
