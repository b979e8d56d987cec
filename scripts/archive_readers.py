#!/usr/bin/env python3
"""Reads a FlyHigh archive with independent readers (pyarrow, DuckDB) and prints
what they see as one JSON document, for the Rust tests to compare with the events.

    archive_readers.py --dir ARCHIVE [--docs docs/analytics.md]
    archive_readers.py --s3-endpoint http://127.0.0.1:PORT --bucket B --prefix P

With --dir: pyarrow reads every table as a Hive-partitioned dataset, and DuckDB
runs the setup block and every `-- query:` block of docs/analytics.md over it,
unchanged except for the archive's path. With --s3-*: pyarrow alone reads the
tables from S3 (moto); DuckDB's S3 support is an extension it would download.

Output: {"tables": {name: {"schema": [[column, type, nullable]], "rows": N,
"event_ids": [...], "distinct_event_ids": N, "files": N}},
"duckdb_types": {name: [[column, type]]}, "queries": {name: {"columns": [...],
"rows": [[...]]}}}. Decimals are printed with their scale, dates and timestamps in
ISO 8601 (UTC).
"""

import argparse
import datetime
import decimal
import json
import re
import sys

import pyarrow.dataset as ds
import pyarrow.fs

TABLES = {"searches": "search", "bookings": "booking", "cancellations": "cancellation"}


def plain(value):
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return value.isoformat(timespec="milliseconds")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def read_tables(root, filesystem):
    out = {}
    for table, event_type in TABLES.items():
        base = f"{root}/event_type={event_type}"
        try:
            dataset = ds.dataset(base, format="parquet", partitioning="hive", filesystem=filesystem)
        except FileNotFoundError:
            out[table] = {"schema": [], "rows": 0, "event_ids": [], "distinct_event_ids": 0, "files": 0}
            continue
        files = [f for f in dataset.files if f.endswith(".parquet")]
        # The files' own schema (the partition columns dt and hour come from paths).
        physical = ds.dataset(files[0], format="parquet", filesystem=filesystem).schema if files else None
        ids = dataset.to_table(columns=["event_id"]).column("event_id").to_pylist()
        out[table] = {
            "schema": [[f.name, str(f.type), f.nullable] for f in physical] if physical else [],
            "rows": len(ids),
            "event_ids": sorted(ids),
            "distinct_event_ids": len(set(ids)),
            "files": len(files),
        }
    return out


def sql_blocks(docs):
    """The ```sql blocks of the docs, by their first-line marker."""
    text = open(docs, encoding="utf-8").read()
    blocks = {}
    for body in re.findall(r"```sql\n(.*?)```", text, flags=re.S):
        first, _, rest = body.partition("\n")
        marker = re.match(r"-- (duckdb: setup|query: (\w+))$", first.strip())
        if marker:
            blocks[marker.group(2) or "setup"] = rest
    return blocks


def run_queries(root, docs):
    import duckdb

    blocks = sql_blocks(docs)
    if "setup" not in blocks:
        sys.exit(f"{docs}: no '-- duckdb: setup' block")
    con = duckdb.connect()
    setup = blocks.pop("setup").replace("'archive/", f"'{root}/")
    for statement in filter(str.strip, setup.split(";")):
        con.execute(statement)
    types = {}
    for table in TABLES:
        types[table] = [[r[0], r[1]] for r in con.execute(f"DESCRIBE {table}").fetchall()]
    queries = {}
    for name, sql in blocks.items():
        cursor = con.execute(sql)
        columns = [d[0] for d in cursor.description]
        rows = [[plain(v) for v in row] for row in cursor.fetchall()]
        queries[name] = {"columns": columns, "rows": rows}
    return types, queries


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir")
    parser.add_argument("--docs", default="docs/analytics.md")
    parser.add_argument("--s3-endpoint")
    parser.add_argument("--bucket")
    parser.add_argument("--prefix", default="archive")
    args = parser.parse_args()
    result = {}
    if args.dir:
        root = args.dir.rstrip("/")
        result["tables"] = read_tables(root, None)
        result["duckdb_types"], result["queries"] = run_queries(root, args.docs)
    else:
        endpoint = args.s3_endpoint.split("://", 1)
        fs = pyarrow.fs.S3FileSystem(
            access_key="testing",
            secret_key="testing",
            region="us-east-1",
            scheme=endpoint[0],
            endpoint_override=endpoint[1],
        )
        result["tables"] = read_tables(f"{args.bucket}/{args.prefix.strip('/')}", fs)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
