"""Several task tries' MLMD rows in one transaction, beside other writers (PostgreSQL).

MLMD's ``PutExecution`` costs 37 SQL statements for a task's start and 68 for its end on
PostgreSQL (a type check, one INSERT per property, a look-up per context), each call its own
transaction; eight busy flushers on two cores stop near 100 executions/s that way. A flusher
draining a spool instead hands each execution, with its artifacts and events, to a
:class:`RowBatch`, which gives them ids at once (from MLMD's own id sequences, so ids still
follow the order of writes, as with MLMD) and writes the whole batch in a few multi-row
statements and one commit.

Safe beside other writers, ours or MLMD's API: ids come from the sequences every writer draws
from; MLMD's unique keys (external ids, one event per artifact, execution and type) refuse a
row another writer wrote first, which rolls the whole batch back as :class:`RowCollision`, and
the caller writes those records again through MLMD's API, which merges with what is stored.
Contexts and types are still created through MLMD's API. Only what MLMD itself would accept is
written this way: a value or property this module cannot store exactly as MLMD does returns
``None`` from :meth:`RowBatch.add`, and the caller uses MLMD's API for that record.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import psycopg2
from airflow_graphlets.store import mlmd_proto as mlmd_pb
from psycopg2 import errors as pg_errors

from airflow_graphlets.errors import StoreUnavailableError, first_line
from airflow_graphlets.store import schema
from airflow_graphlets.store.uri import StoreConfig

_PROPERTY_COLUMNS = "name, is_custom_property, int_value, double_value, string_value, bool_value"
_CONNECT_TIMEOUT_SECONDS = 10
# MLMD's PropertyType numbers (metadata_store.proto) and the Value field each is stored from.
_VALUE_FIELD_OF_TYPE = {1: "int_value", 2: "double_value", 3: "string_value", 6: "bool_value"}


class RowCollision(Exception):
    """Another writer stored a row of this batch first; nothing of the batch was written."""


class BatchRefused(Exception):
    """The database refused the batch for what it holds (a value out of range, say), not for
    being down; nothing was written. Written record by record, the culprit can be set aside."""


@dataclass
class _ExecutionRows:
    row: tuple
    properties: list[tuple]
    new: bool


@dataclass
class _Pending:
    executions: dict[int, _ExecutionRows] = field(default_factory=dict)
    artifacts: list[tuple] = field(default_factory=list)
    artifact_properties: list[tuple] = field(default_factory=list)
    events: list[tuple] = field(default_factory=list)
    event_paths: list[tuple] = field(default_factory=list)
    associations: set[tuple[int, int]] = field(default_factory=set)
    attributions: set[tuple[int, int]] = field(default_factory=set)


class RowBatch:
    """Executions, their new artifacts and events, held until :meth:`flush` writes them at once.

    Args:
      config: a PostgreSQL store whose MLMD schema exists.
      declared_properties: given an artifact type id, its declared property names and MLMD
        property types (what MLMD checks a typed property against), or ``None`` if unknown; an
        artifact of an unknown type, or whose typed properties do not match, is not taken.
    """

    def __init__(self, config: StoreConfig, declared_properties: Callable[[int], Mapping[str, int] | None]) -> None:
        if config.backend != "postgresql":
            raise ValueError(f"RowBatch writes PostgreSQL stores only, not {config.backend}")
        self._declared = declared_properties
        try:
            self._conn = psycopg2.connect(
                host=config.host, port=config.port, user=config.user, password=config.password or None,
                dbname=config.database, connect_timeout=_CONNECT_TIMEOUT_SECONDS,
                application_name="airflow-graphlets flusher", **config.connect_args())
        except psycopg2.Error as err:
            raise StoreUnavailableError(f"Cannot connect to the MLMD store {config}: {first_line(err)}") from err
        self._conn.autocommit = True  # id draws commit at once; flush opens its own transaction
        self._pending = _Pending()

    @staticmethod
    def supports(config: StoreConfig) -> bool:
        """Whether stores like ``config`` are written this way (PostgreSQL; others use MLMD's API)."""
        return config.backend == "postgresql"

    def __len__(self) -> int:
        """Executions waiting to be written."""
        return len(self._pending.executions)

    def add(
        self,
        execution: mlmd_pb.Execution,
        pairs: Sequence[tuple[mlmd_pb.Artifact, mlmd_pb.Event]],
        context_ids: Sequence[int],
    ) -> tuple[int, list[int]] | None:
        """Queue what ``put_execution(execution, pairs, contexts)`` would write.

        ``execution`` is new (no id) or a full copy of a stored or queued one (its properties
        replace the stored ones, as MLMD's update does). Artifacts with an id are inputs, linked
        by events only; artifacts without one are new. Every context must have an id.

        Returns:
          The execution's id and each pair's artifact id, as ``put_execution`` returns them;
          ``None`` when something here cannot be stored exactly as MLMD's API would store it
          (nothing was queued: write it through the API).

        Raises:
          StoreUnavailableError: drawing ids failed.
        """
        new_artifacts = [artifact for artifact, _ in pairs if not artifact.HasField("id")]
        if not _storable(execution.custom_properties) or execution.properties:
            return None
        if not all(self._artifact_storable(artifact) for artifact in new_artifacts):
            return None
        execution_ids, artifact_ids, event_ids = self._draw_ids(
            0 if execution.HasField("id") else 1, len(new_artifacts), len(pairs))
        now = _now_ms()
        pending = self._pending
        execution_id = execution.id if execution.HasField("id") else execution_ids[0]
        queued = pending.executions.get(execution_id)
        new = not execution.HasField("id") or (queued is not None and queued.new)
        created = execution.create_time_since_epoch or (queued.row[5] if queued else now)
        pending.executions[execution_id] = _ExecutionRows(
            row=(execution_id, execution.type_id, execution.last_known_state, _optional(execution, "name"),
                 _optional(execution, "external_id"), created, now),
            properties=_property_rows(execution_id, execution),
            new=new,
        )
        pending.associations.update((context_id, execution_id) for context_id in context_ids)
        fresh = iter(artifact_ids)
        result_ids = []
        for (artifact, event), event_id in zip(pairs, event_ids):
            if artifact.HasField("id"):
                artifact_id = artifact.id
            else:
                artifact_id = next(fresh)
                pending.artifacts.append((artifact_id, artifact.type_id, _optional(artifact, "uri"), artifact.state,
                                          _optional(artifact, "name"), _optional(artifact, "external_id"), now, now))
                pending.artifact_properties.extend(_property_rows(artifact_id, artifact))
            result_ids.append(artifact_id)
            pending.attributions.update((context_id, artifact_id) for context_id in context_ids)
            pending.events.append((event_id, artifact_id, execution_id, event.type,
                                   event.milliseconds_since_epoch or now))
            for step in event.path.steps:
                if step.HasField("key"):
                    pending.event_paths.append((event_id, False, None, step.key))
                else:
                    pending.event_paths.append((event_id, True, step.index, None))
        return execution_id, result_ids

    def flush(self) -> None:
        """Write everything queued in one transaction.

        Raises:
          RowCollision: a unique key refused a row (written by someone else first).
          BatchRefused: the database refused a value of the batch.
          StoreUnavailableError: the database is down or failed (the batch may be tried again).
          In every case nothing was written and the queue is empty.
        """
        pending, self._pending = self._pending, _Pending()
        if not pending.executions:
            return
        cursor = self._conn.cursor()
        try:
            try:
                statements = _statements(cursor, pending)
            except (ValueError, TypeError) as err:  # the driver cannot send a value (a NUL character, say)
                raise BatchRefused(f"{type(err).__name__}: {err}") from err
            cursor.execute(statements)
        except pg_errors.UniqueViolation as err:
            self._rollback(cursor)
            raise RowCollision(first_line(err)) from err
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as err:
            self._rollback(cursor)
            raise StoreUnavailableError(f"Writing to the MLMD store failed: {first_line(err)}") from err
        except psycopg2.Error as err:  # data, integrity and the like: the same batch would fail again
            self._rollback(cursor)
            raise BatchRefused(first_line(err)) from err
        finally:
            cursor.close()

    def span_artifact_ids(self, pipeline: str, type_name: str, span_min: int, span_max: int) -> list[int]:
        """Ids of the LIVE ``type_name`` artifacts of pipeline context ``pipeline`` with a typed
        ``span`` in ``[span_min, span_max]``: what :func:`artifacts.pipeline_spans` asks MLMD's
        filter query for, which costs a flusher about 3 ms of CPU per training record.

        Raises:
          StoreUnavailableError: the query failed.
        """
        try:
            with self._conn.cursor() as cursor:
                cursor.execute(_SPAN_QUERY, {"pipeline": pipeline, "type_name": type_name, "lo": span_min,
                                             "hi": span_max, "context_type": schema.PIPELINE_CONTEXT,
                                             "span": schema.SPAN, "live": mlmd_pb.Artifact.LIVE})
                return sorted({row[0] for row in cursor.fetchall()})
        except psycopg2.Error as err:
            raise StoreUnavailableError(f"Reading the MLMD store failed: {first_line(err)}") from err

    def discard(self) -> None:
        """Forget everything queued."""
        self._pending = _Pending()

    def close(self) -> None:
        self.discard()
        try:
            self._conn.close()
        except Exception:  # noqa: BLE001 - closing a broken connection must not raise
            pass

    def _rollback(self, cursor) -> None:
        try:
            cursor.execute("ROLLBACK")
        except Exception:  # noqa: BLE001 - the connection may be gone; the next use will say so
            pass

    def _draw_ids(self, executions: int, artifacts: int, events: int) -> tuple[list[int], list[int], list[int]]:
        try:
            with self._conn.cursor() as cursor:
                cursor.execute(
                    "SELECT ARRAY(SELECT nextval('execution_id_seq') FROM generate_series(1, %s)), "
                    "ARRAY(SELECT nextval('artifact_id_seq') FROM generate_series(1, %s)), "
                    "ARRAY(SELECT nextval('event_id_seq') FROM generate_series(1, %s))",
                    (executions, artifacts, events))
                return cursor.fetchone()
        except psycopg2.Error as err:
            raise StoreUnavailableError(f"Drawing ids from the MLMD store failed: {first_line(err)}") from err

    def _artifact_storable(self, artifact: mlmd_pb.Artifact) -> bool:
        declared: Mapping[str, int] | None = self._declared(artifact.type_id)
        if declared is None or not _storable(artifact.custom_properties) or not _storable(artifact.properties):
            return False
        return all(_VALUE_FIELD_OF_TYPE.get(declared.get(name, 0)) == value.WhichOneof("value")
                   for name, value in artifact.properties.items())


# Type kinds as MLMD stores them: 1 artifact types, 2 context types.
_SPAN_QUERY = """
SELECT a.id FROM Artifact a
JOIN Type t ON t.id = a.type_id AND t.type_kind = 1 AND t.name = %(type_name)s
JOIN ArtifactProperty p ON p.artifact_id = a.id AND p.name = %(span)s AND NOT p.is_custom_property
JOIN Attribution at ON at.artifact_id = a.id
JOIN Context c ON c.id = at.context_id AND c.name = %(pipeline)s
JOIN Type ct ON ct.id = c.type_id AND ct.type_kind = 2 AND ct.name = %(context_type)s
WHERE a.state = %(live)s AND p.int_value BETWEEN %(lo)s AND %(hi)s
"""


_PROPERTY_TYPES = "int[], text[], bool[], int[], float8[], text[], bool[]"
_TABLES = {  # table: (columns, SQL array types of the columns), rows inserted with unnest()
    "Execution": ("id, type_id, last_known_state, name, external_id, create_time_since_epoch, "
                  "last_update_time_since_epoch", "int[], int[], int[], text[], text[], bigint[], bigint[]"),
    "ExecutionProperty": (f"execution_id, {_PROPERTY_COLUMNS}", _PROPERTY_TYPES),
    "Artifact": ("id, type_id, uri, state, name, external_id, create_time_since_epoch, last_update_time_since_epoch",
                 "int[], int[], text[], int[], text[], text[], bigint[], bigint[]"),
    "ArtifactProperty": (f"artifact_id, {_PROPERTY_COLUMNS}", _PROPERTY_TYPES),
    "Event": ("id, artifact_id, execution_id, type, milliseconds_since_epoch", "int[], int[], int[], int[], bigint[]"),
    "EventPath": ("event_id, is_index_step, step_index, step_key", "int[], bool[], int[], text[]"),
    "Association": ("context_id, execution_id", "int[], int[]"),
    "Attribution": ("context_id, artifact_id", "int[], int[]"),
}


def _statements(cursor, pending: _Pending) -> bytes:
    """The whole batch as one string of statements, sent in one round trip: each table's rows
    as one column array per column (``unnest``), which the driver builds in C."""
    executions = list(pending.executions.values())
    updated = [rows.row for rows in executions if not rows.new]
    statements = [b"BEGIN"]

    def insert(table: str, rows, suffix: str = "") -> None:
        if rows:
            columns, types = _TABLES[table]
            arrays = "%s::" + ", %s::".join(types.split(", "))
            statements.append(cursor.mogrify(f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({arrays}){suffix}",
                                             [list(column) for column in zip(*rows)]))

    insert("Execution", [rows.row for rows in executions if rows.new])
    if updated:
        # MLMD's update: the state and update time change, the properties are replaced.
        statements.append(cursor.mogrify(
            "UPDATE Execution SET last_known_state = v.state, last_update_time_since_epoch = v.ms "
            "FROM unnest(%s::int[], %s::int[], %s::bigint[]) AS v(id, state, ms) WHERE Execution.id = v.id",
            ([row[0] for row in updated], [row[2] for row in updated], [row[6] for row in updated])))
        statements.append(cursor.mogrify("DELETE FROM ExecutionProperty WHERE execution_id = ANY(%s::int[])",
                                         ([row[0] for row in updated],)))
    insert("ExecutionProperty", [prop for rows in executions for prop in rows.properties])
    insert("Artifact", pending.artifacts)
    insert("ArtifactProperty", pending.artifact_properties)
    insert("Event", pending.events)
    insert("EventPath", pending.event_paths)
    # Links another writer made already are kept as they are, as MLMD's API does.
    insert("Association", sorted(pending.associations), " ON CONFLICT DO NOTHING")
    insert("Attribution", sorted(pending.attributions), " ON CONFLICT DO NOTHING")
    statements.append(b"COMMIT")
    return b";\n".join(statements)


def _storable(values) -> bool:
    """Whether every value is one this module writes (MLMD's struct and proto values are not)."""
    return all(value.WhichOneof("value") in _VALUE_COLUMNS for value in values.values())


_VALUE_COLUMNS = ("int_value", "double_value", "string_value", "bool_value")


def _property_rows(owner_id: int, node) -> list[tuple]:
    rows = []
    for is_custom, values in ((False, node.properties), (True, node.custom_properties)):
        for name, value in values.items():
            kind = value.WhichOneof("value")
            rows.append((owner_id, name, is_custom, *(getattr(value, column) if column == kind else None
                                                      for column in _VALUE_COLUMNS)))
    return rows


def _optional(node, name: str):
    """A field's value, or NULL when unset (as MLMD stores an unset name, uri or external id)."""
    return getattr(node, name) if node.HasField(name) else None


def _now_ms() -> int:
    return int(time.time() * 1000)
