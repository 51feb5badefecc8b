"""Listing a large S3 prefix: the filestore's paged listing beside s3fs's `find`.

Starts moto's S3 server on 127.0.0.1, puts N small objects (default 10,000) under one prefix,
then times, each in a fresh process: s3fs `find` of the prefix (the reference: the whole
listing in memory before the first file can be read), the filestore's paged listing to the
end, and the paged listing up to its first file. Peak RSS is dominated by botocore's models,
so the Python heap the listing itself holds at its peak is traced too (tracemalloc).
"""

from __future__ import annotations

import argparse
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from _measure import measure, report

from dataloader_filestore.listing import iter_files
from dataloader_filestore.testing import MotoServer

SETUP = """
import s3fs
from dataloader_filestore.listing import iter_files
fs = s3fs.S3FileSystem(key={key!r}, secret={secret!r},
                       client_kwargs={{"endpoint_url": {endpoint!r}, "region_name": "us-east-1"}})
root = {root!r}
def call(operation, *args, **kwargs):
    return operation(*args, **kwargs)
"""


def traced_peak_mib(listing: Callable[[], Any]) -> float:
    """The most memory Python objects held while `listing()` ran, in MiB."""
    tracemalloc.start()
    try:
        listing()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=10_000)
    args = parser.parse_args()
    server = MotoServer().start()
    try:
        bucket = server.create_bucket()
        s3 = server.client("s3")

        def put(number: int) -> None:
            key = f"landing/day={number % 30:02d}/part-{number:07d}.csv"
            s3.put_object(Bucket=bucket, Key=key, Body=b"id\n1\n")

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, range(args.keys)))
        print(f"{args.keys:,} objects under s3://{bucket}/landing/ (moto on 127.0.0.1)")
        setup = SETUP.format(
            key=server.access_key,
            secret=server.secret_key,
            endpoint=server.endpoint_url,
            root=f"{bucket}/landing",
        )
        reference = measure(
            "s3fs find (reference)",
            f"assert len(fs.find(root, detail=True)) == {args.keys}\n",
            args.keys,
            setup=setup,
        )
        paged = measure(
            "paged listing, all files",
            f"assert sum(1 for _ in iter_files(fs, 's3', root, call)) == {args.keys}\n",
            args.keys,
            setup=setup,
        )
        first = measure(
            "paged listing, first file",
            "next(iter_files(fs, 's3', root, call))\n",
            1,
            setup=setup,
        )
        report("S3 listing (the rows column counts keys)", reference, [paged, first])

        import s3fs

        fs = s3fs.S3FileSystem(
            key=server.access_key,
            secret=server.secret_key,
            client_kwargs={"endpoint_url": server.endpoint_url, "region_name": server.region},
        )
        root = f"{bucket}/landing"
        fs.ls(bucket)  # connect before tracing

        def paged_listing() -> None:
            for _ in iter_files(fs, "s3", root, lambda operation, *a, **k: operation(*a, **k)):
                pass

        found = traced_peak_mib(lambda: fs.find(root, detail=True))
        fs.invalidate_cache()
        streamed = traced_peak_mib(paged_listing)
        print(
            f"Python heap at the listing's peak: s3fs find {found:.1f} MiB, "
            f"paged listing {streamed:.1f} MiB ({streamed / found:.2f}x)"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
