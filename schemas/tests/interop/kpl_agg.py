"""The Python `aws-kinesis-agg` library on the other side of `tests/kpl_interop.rs`.

Reads one JSON request on stdin and writes one JSON answer on stdout; bytes travel
as hex both ways.

    {"op": "aggregate", "records": [{"partition_key": str, "explicit_hash_key": str|null, "data": hex}]}
    -> {"aggregates": [{"partition_key": str, "explicit_hash_key": str|null, "data": hex}]}

    {"op": "deaggregate", "records": [{"sequence_number": str, "partition_key": str, "data": hex}]}
    -> {"records": [{"sequence_number": str, "sub_sequence_number": int|null,
                     "aggregated": bool, "partition_key": str,
                     "explicit_hash_key": str|null, "data": hex}]}

Deaggregation goes through `deaggregate_records` with records shaped as Lambda
delivers them (base64 `kinesis.data`), which is how Python consumers call it.
"""

import base64
import json
import sys

from aws_kinesis_agg.aggregator import RecordAggregator
from aws_kinesis_agg.deaggregator import deaggregate_records


def aggregate(records):
    aggregator = RecordAggregator()
    out = []

    def emit(agg_record):
        partition_key, explicit_hash_key, data = agg_record.get_contents()
        out.append(
            {
                "partition_key": partition_key,
                "explicit_hash_key": explicit_hash_key,
                "data": data.hex(),
            }
        )

    for r in records:
        full = aggregator.add_user_record(
            r["partition_key"], bytes.fromhex(r["data"]), r["explicit_hash_key"]
        )
        if full is not None:
            emit(full)
    last = aggregator.clear_and_get()
    if last is not None:
        emit(last)
    return {"aggregates": out}


def deaggregate(records):
    lambda_records = [
        {
            "eventSource": "aws:kinesis",
            "eventID": "shardId-000000000000:" + r["sequence_number"],
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": r["partition_key"],
                "sequenceNumber": r["sequence_number"],
                "approximateArrivalTimestamp": 1795342500.25,
                "data": base64.b64encode(bytes.fromhex(r["data"])).decode("ascii"),
            },
        }
        for r in records
    ]
    out = []
    for r in deaggregate_records(lambda_records):
        k = r["kinesis"]
        # Aggregated user records come back with `data` as base64 bytes; records
        # passed through unchanged keep the input's base64 str. Both decode alike.
        out.append(
            {
                "sequence_number": k["sequenceNumber"],
                "sub_sequence_number": k.get("subSequenceNumber"),
                "aggregated": k.get("aggregated", False),
                "partition_key": k["partitionKey"],
                "explicit_hash_key": k.get("explicitHashKey"),
                "data": base64.b64decode(k["data"]).hex(),
            }
        )
    return {"records": out}


def main():
    request = json.load(sys.stdin)
    ops = {"aggregate": aggregate, "deaggregate": deaggregate}
    json.dump(ops[request["op"]](request["records"]), sys.stdout)


if __name__ == "__main__":
    main()
