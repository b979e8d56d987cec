"""moto server for the test suite, with moto 5.2's DynamoDB transactions made sound.

Run by `start_moto` (scripts/lib/services.sh) with the venv's python, in place of
the `moto_server` command: `python scripts/moto_server.py -H 127.0.0.1 -p PORT`
takes the same arguments and starts the same server. Before that it patches two
faults of moto 5.2.5's `DynamoDBBackend.transact_write_items` that tests with
concurrent writers run into (seen with two `flyhigh consume` processes on one
table, 20,000 events):

1. Cost. For its rollback it deep-copies the whole table once per *item* of the
   transaction, so a transaction of n items on a table of m items costs n * m
   item copies, and none of them is ever freed: every moto model object (each
   `Item` of each copy included) is also appended to its class's
   `instances_tracked` list, kept for moto's dashboard only. moto grew past
   7 GiB until the kernel killed it. Patched: within one transaction, the copies
   of one table are made once and shared (the rollback only ever reads one of
   them), and the objects of the copies moto.dynamodb.models makes are taken off
   the dashboard's lists again (a restored copy is then missing from the
   dashboard, which nothing here reads).
2. Lost updates. The rollback puts back the copy taken when the transaction
   began, so a transaction cancelled while another request thread committed
   meanwhile erases that commit; real DynamoDB never does. Patched: every
   DynamoDB request is handled under one lock, so nothing else runs between
   the copy and the rollback (DynamoDB requests to moto are serialized; moto's
   other services are not affected).

It refuses to start (exit 3, with the reason) when moto's internals are not the
ones this patch was written against; requirements-test.txt pins moto 5.2.x.
"""

import copy
import functools
import inspect
import re
import sys
import threading
import types

import moto
from moto.core.model_instances import model_data
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb import responses as dynamodb_responses
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table

SUPPORTED_MOTO = "5.2."


def _fail(reason):
    sys.stderr.write(
        f"scripts/moto_server.py: cannot patch moto {moto.__version__}: {reason}\n"
        "The patch was written against moto 5.2.5's moto/dynamodb/models/__init__.py "
        "(DynamoDBBackend.transact_write_items); re-read that code and update the patch "
        "or the pin in requirements-test.txt.\n"
    )
    sys.exit(3)


def _check_internals():
    """Fails loudly unless moto looks exactly as the patch expects."""
    if not moto.__version__.startswith(SUPPORTED_MOTO):
        _fail(f"version is not {SUPPORTED_MOTO}x")
    original = DynamoDBBackend.transact_write_items
    if list(inspect.signature(original).parameters) != ["self", "transact_items"]:
        _fail(f"transact_write_items{inspect.signature(original)} changed its signature")
    source = inspect.getsource(original)
    # The snapshot per item, and the two rollbacks that put a snapshot back.
    if "copy.deepcopy(" not in source or source.count(
        "self.tables[table_name] = original_table_state[table_name]"
    ) != 2:
        _fail("transact_write_items no longer snapshots tables with copy.deepcopy")
    if dynamodb_models.__dict__.get("copy") is not copy:
        _fail("moto.dynamodb.models no longer imports the copy module as `copy`")
    # The stand-in below provides only deepcopy.
    used = set(re.findall(r"\bcopy\.(\w+)", inspect.getsource(dynamodb_models)))
    if used != {"deepcopy"}:
        _fail(f"moto.dynamodb.models uses copy.{sorted(used)}, not only copy.deepcopy")
    models = model_data.get("dynamodb", {})
    if "Item" not in models or any(
        not isinstance(getattr(m, "instances_tracked", None), list) for m in models.values()
    ):
        _fail("moto no longer tracks DynamoDB model instances in model_data")
    if not callable(getattr(dynamodb_responses.DynamoHandler, "call_action", None)):
        _fail("DynamoHandler.call_action is gone")


# The table copies of the transaction this thread is running: id(table) ->
# (table, copy). Absent outside a transaction.
_transaction = threading.local()


def _untracked_deepcopy(value, memo):
    """A deep copy whose model objects moto's dashboard lists do not keep alive.
    Runs under the DynamoDB request lock, so every DynamoDB model object created
    meanwhile is one of the copy's."""
    tracked = [m.instances_tracked for m in model_data["dynamodb"].values()]
    lengths = [len(instances) for instances in tracked]
    result = copy.deepcopy(value, memo)
    for instances, length in zip(tracked, lengths):
        del instances[length:]
    return result


def _deepcopy(value, memo=None):
    """`copy.deepcopy` as moto.dynamodb.models sees it: inside a transaction a
    table is copied once and every later request for a copy of it gets the same."""
    copies = getattr(_transaction, "copies", None)
    if copies is None or not isinstance(value, Table):
        return _untracked_deepcopy(value, memo)
    if id(value) not in copies:
        copies[id(value)] = (value, _untracked_deepcopy(value, memo))
    return copies[id(value)][1]


def _patch():
    original = DynamoDBBackend.transact_write_items

    @functools.wraps(original)
    def transact_write_items(self, transact_items):
        _transaction.copies = {}
        try:
            return original(self, transact_items)
        finally:
            del _transaction.copies

    DynamoDBBackend.transact_write_items = transact_write_items
    dynamodb_models.copy = types.SimpleNamespace(deepcopy=_deepcopy)

    # One lock over whole requests (parsing, backend call, serializing the
    # answer): the backend's snapshot-and-restore is then atomic with respect to
    # every other DynamoDB request, as DynamoDB's own isolation is.
    lock = threading.Lock()
    call_action = dynamodb_responses.DynamoHandler.call_action

    @functools.wraps(call_action)
    def serialized_call_action(self):
        with lock:
            return call_action(self)

    dynamodb_responses.DynamoHandler.call_action = serialized_call_action


def main(argv):
    _check_internals()
    _patch()
    from moto.server import main as moto_main

    moto_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
