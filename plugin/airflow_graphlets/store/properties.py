"""Python values to and from MLMD ``Value`` protos, the way TFX stores them."""

from __future__ import annotations

import json
from typing import Any

from airflow_graphlets.store import mlmd_proto as metadata_store_pb2

from airflow_graphlets.store import schema

# MLMD's int_value column is a 32-bit INTEGER on PostgreSQL and MySQL (64-bit only on SQLite).
_INT32 = range(-(2**31), 2**31)
_EXACT_DOUBLE = 2**53

# TFX stores these flags as INT 1/0 (tfx/components/evaluator/constants.py, pusher/executor.py).
_INT_FLAGS = frozenset({schema.BLESSED, schema.PUSHED})


def set_value(target: metadata_store_pb2.Value, name: str, value: Any) -> None:
    """Write ``value`` into ``target`` as TFX would for a property called ``name``.

    Booleans become INT 1/0 for TFX's ``blessed``/``pushed`` flags and BOOLEAN otherwise; lists
    and dicts become JSON strings (TFX writes ``split_names`` as a JSON list string). Integers
    outside 32 bits become DOUBLE (exact up to 2**53) or, beyond that, decimal strings, because
    PostgreSQL's and MySQL's MLMD schemas hold 32-bit integers only.
    """
    if isinstance(value, bool):
        if name in _INT_FLAGS:
            target.int_value = int(value)
        else:
            target.bool_value = value
    elif isinstance(value, int):
        if value in _INT32:
            target.int_value = value
        elif abs(value) <= _EXACT_DOUBLE:
            target.double_value = float(value)  # exact, and portable across the three databases
        else:
            target.string_value = str(value)
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, str):
        target.string_value = value
    else:
        target.string_value = json.dumps(value, sort_keys=True)


def get_value(value: metadata_store_pb2.Value) -> Any:
    """The Python value held by an MLMD ``Value`` (``None`` when unset)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "struct_value":
        from google.protobuf import json_format

        return json_format.MessageToDict(value.struct_value)
    return getattr(value, kind)
