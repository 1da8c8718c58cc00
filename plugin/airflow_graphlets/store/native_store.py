"""An MLMD store spoken to in SQL: ml-metadata's ``MetadataStore`` API without the ml-metadata client.

:class:`NativeStore` has the methods of ml-metadata's Python ``MetadataStore`` that airflow-graphlets
and TFX-style writers use, with the same arguments and results, and writes the rows ml-metadata
1.17 writes, in the same order (types with their properties and base type, nodes and their
properties, events and their paths, associations, attributions, parent contexts), so a store
written here is read by MLMD's API as if MLMD had written it, and the reverse.

Each call is one transaction. Several writers at once are safe as with MLMD: MLMD's unique keys
(type and name, external ids, one event per artifact, execution and type, one link per pair)
refuse a second copy, which surfaces as :class:`~airflow_graphlets.store.mlmd_errors.AlreadyExistsError`
(callers re-read and merge); type registration is serialised per database.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event

from airflow_graphlets.store import mlmd_proto as pb
from airflow_graphlets.store.mlmd_errors import AlreadyExistsError, InvalidArgumentError, NotFoundError
from airflow_graphlets.store.native_reads import (
    ARTIFACT_KIND,
    CONTEXT_KIND,
    EXECUTION_KIND,
    SYSTEM_BASE_TYPES,
    NativeReads,
)
from airflow_graphlets.store.sql import Sql, id_chunks, savepoint, transaction
from airflow_graphlets.store.uri import StoreConfig

_VALUE_COLUMNS = ("int_value", "double_value", "string_value", "bool_value")
_VALUE_OF_TYPE = {pb.INT: "int_value", pb.DOUBLE: "double_value", pb.STRING: "string_value",
                  pb.BOOLEAN: "bool_value", pb.STRUCT: "struct_value", pb.PROTO: "proto_value"}
_KINDS = {pb.ArtifactType: ARTIFACT_KIND, pb.ExecutionType: EXECUTION_KIND, pb.ContextType: CONTEXT_KIND}
_NODE_TABLES = {pb.Artifact: ("Artifact", "ArtifactProperty", "artifact_id", ("uri", "state", "name", "external_id")),
                pb.Execution: ("Execution", "ExecutionProperty", "execution_id",
                               ("last_known_state", "name", "external_id")),
                pb.Context: ("Context", "ContextProperty", "context_id", ("name", "external_id"))}
_TYPE_LOCK = 0x6D6C7479  # "mlty": one type registration at a time per database
_CONNECT_TIMEOUT_SECONDS = 10


def _now_ms() -> int:
    return int(time.time() * 1000)


def make_engine(config: StoreConfig) -> sa.Engine:
    """A read-write engine (a connection pool) on the store's database; the schema must exist
    (``store/bootstrap.py`` makes it). Transactions are begun by :func:`store.sql.transaction`."""
    if config.backend == "sqlite":
        engine = sa.create_engine(config.sqlalchemy_url(), pool_size=1, max_overflow=4,
                                  connect_args={"timeout": 60, "check_same_thread": False})

        @sa_event.listens_for(engine, "connect")
        def _autocommit_driver(dbapi_connection, _record) -> None:
            dbapi_connection.isolation_level = None  # our BEGIN is the only one

        return engine
    # READ COMMITTED on MySQL as on PostgreSQL: a writer that lost a race to insert a row reads
    # the winner's row in the same transaction (REPEATABLE READ would keep its older snapshot).
    return sa.create_engine(config.sqlalchemy_url(), pool_pre_ping=True, pool_size=1, max_overflow=4,
                            isolation_level="READ COMMITTED",
                            connect_args={"connect_timeout": _CONNECT_TIMEOUT_SECONDS, **config.connect_args()})


class NativeStore(NativeReads):
    """ml-metadata's ``MetadataStore`` API over SQL, on SQLite, PostgreSQL and MySQL/MariaDB.

    Args:
      config: the store; its MLMD schema must exist (``open_store`` creates it).
      engine: an engine to use instead of one made from ``config`` (the store does not dispose it).
    """

    def __init__(self, config: StoreConfig, engine: sa.Engine | None = None) -> None:
        self.config = config
        self._own_engine = engine is None
        self.engine = engine if engine is not None else make_engine(config)
        self.backend = config.backend
        # Declared properties of each type id seen: types only gain properties, and a property
        # this cache lacks is looked up again before a node is refused for it.
        self._declared: dict[int, dict[str, int]] = {}

    def close(self) -> None:
        """Release the store's database connections."""
        if self._own_engine:
            self.engine.dispose()

    def __repr__(self) -> str:
        return f"NativeStore({self.config})"

    # -- transactions --------------------------------------------------------------------------
    def _reading(self) -> contextlib.AbstractContextManager[Sql]:
        return transaction(self.engine, self.backend, write=False, describe=str(self.config))

    def _writing(self) -> contextlib.AbstractContextManager[Sql]:
        return transaction(self.engine, self.backend, write=True, describe=str(self.config))

    # -- types ---------------------------------------------------------------------------------
    def put_artifact_type(self, artifact_type, can_add_fields: bool = False, can_omit_fields: bool = False) -> int:
        return self._put_type(pb.convert(artifact_type, pb.ArtifactType), can_add_fields, can_omit_fields)

    def put_execution_type(self, execution_type, can_add_fields: bool = False, can_omit_fields: bool = False) -> int:
        return self._put_type(pb.convert(execution_type, pb.ExecutionType), can_add_fields, can_omit_fields)

    def put_context_type(self, context_type, can_add_fields: bool = False, can_omit_fields: bool = False) -> int:
        return self._put_type(pb.convert(context_type, pb.ContextType), can_add_fields, can_omit_fields)

    def _put_type(self, proto, can_add_fields: bool, can_omit_fields: bool) -> int:
        """MLMD's PutType: the id of the stored type of that name (and version), adding the
        properties it lacks when ``can_add_fields``; a new type with its properties and base."""
        kind = _KINDS[type(proto)]
        if not proto.name:
            raise InvalidArgumentError("No type name is specified.")
        version = proto.version if proto.HasField("version") else None
        version_clause = "version IS NULL" if version is None else "version = :version"
        with self._writing() as sql:
            self._lock_types(sql)
            type_id = sql.scalar(f"SELECT id FROM Type WHERE type_kind = :kind AND name = :name AND {version_clause}",
                                 {"kind": kind, "name": proto.name, "version": version})
            if type_id is None:
                return self._create_type(sql, kind, proto, version)
            stored = dict(sql.rows("SELECT name, data_type FROM TypeProperty WHERE type_id = :t", {"t": type_id}))
            for name, data_type in proto.properties.items():
                if name in stored and stored[name] != data_type:
                    raise AlreadyExistsError(f"Type already exists with different property type: {name}")
            missing = sorted(name for name in proto.properties if name not in stored)
            if missing and not can_add_fields:
                raise AlreadyExistsError(f"Type already exists with different properties: {proto.name}")
            if set(stored) - set(proto.properties) and not can_omit_fields:
                raise AlreadyExistsError(f"Type already exists with more properties: {proto.name}")
            sql.insert_rows("INSERT INTO TypeProperty (type_id, name, data_type) VALUES",
                            [(type_id, name, proto.properties[name]) for name in missing])
            self._declared.pop(type_id, None)
            return type_id

    def _create_type(self, sql: Sql, kind: int, proto, version: str | None) -> int:
        type_id = sql.insert("INSERT INTO Type (name, version, type_kind, description, external_id) "
                             "VALUES (:name, :version, :kind, :description, :external_id)",
                             {"name": proto.name, "version": version, "kind": kind,
                              "description": proto.description if proto.HasField("description") else None,
                              "external_id": proto.external_id or None})
        sql.insert_rows("INSERT INTO TypeProperty (type_id, name, data_type) VALUES",
                        [(type_id, name, data_type) for name, data_type in sorted(proto.properties.items())])
        if proto.HasField("base_type") and proto.base_type:
            base_name = SYSTEM_BASE_TYPES[kind][proto.base_type - 1]
            base_query = "SELECT id FROM Type WHERE type_kind = :k AND name = :n"
            base_id = sql.scalar(base_query, {"k": kind, "n": base_name})
            if base_id is None:  # ml-metadata registers its simple types on connect; a store made otherwise may lack them
                install_simple_types(sql)
                base_id = sql.scalar(base_query, {"k": kind, "n": base_name})
            sql.run("INSERT INTO ParentType (type_id, parent_type_id) VALUES (:t, :p)", {"t": type_id, "p": base_id})
        return type_id

    def _lock_types(self, sql: Sql) -> None:
        """Serialise type registration (MLMD's Type table has no unique name key)."""
        if self.backend == "postgresql":
            sql.run("SELECT pg_advisory_xact_lock(:k)", {"k": _TYPE_LOCK})
        elif self.backend == "mysql":
            sql.run("SELECT schema_version FROM MLMDEnv FOR UPDATE")  # a row lock every writer takes
        # SQLite: BEGIN IMMEDIATE already holds the database's write lock.

    # -- nodes ---------------------------------------------------------------------------------
    def put_artifacts(self, artifacts: Sequence, field_mask_paths: Sequence[str] | None = None) -> list[int]:
        with self._writing() as sql:
            return [self._upsert_node(sql, pb.convert(a, pb.Artifact), field_mask_paths) for a in artifacts]

    def put_executions(self, executions: Sequence, field_mask_paths: Sequence[str] | None = None) -> list[int]:
        with self._writing() as sql:
            return [self._upsert_node(sql, pb.convert(e, pb.Execution), field_mask_paths) for e in executions]

    def put_contexts(self, contexts: Sequence, field_mask_paths: Sequence[str] | None = None) -> list[int]:
        with self._writing() as sql:
            return [self._upsert_node(sql, pb.convert(c, pb.Context), field_mask_paths) for c in contexts]

    def put_execution(self, execution, artifact_and_events: Sequence, contexts: Sequence,
                      reuse_context_if_already_exist: bool = False,
                      reuse_artifact_if_already_exist_by_external_id: bool = False,
                      force_reuse_context: bool = False) -> tuple[int, list[int], list[int]]:
        """MLMD's PutExecution, in one transaction: upsert the artifacts, then the execution, then
        insert the events, then upsert the contexts and link the execution and artifacts to each.

        Returns:
          The execution's id, the artifacts' ids (in the order given), the contexts' ids.
        """
        execution = pb.convert(execution, pb.Execution)
        pairs = [(pb.convert(a, pb.Artifact) if a is not None else None,
                  pb.convert(e, pb.Event) if e is not None else None) for a, e in artifact_and_events]
        contexts = [pb.convert(c, pb.Context) for c in contexts]
        with self._writing() as sql:
            if reuse_artifact_if_already_exist_by_external_id:
                self._reuse_by_external_id(sql, [a for a, _ in pairs if a is not None and not a.HasField("id")])
            stored = self._stored_nodes(sql, pb.Artifact, [a.id for a, _ in pairs if a is not None and a.HasField("id")])
            for artifact, _ in pairs:
                if artifact is not None:
                    artifact.id = self._upsert_node(sql, artifact, None, stored.get(artifact.id))
            execution_id = self._upsert_node(sql, execution, None)
            events, artifact_ids = [], []
            for artifact, event in pairs:
                if event is not None:
                    if event.HasField("execution_id") and event.execution_id != execution_id:
                        raise InvalidArgumentError("Request's event.execution_id does not match with the given "
                                                   "execution")
                    if artifact is not None:
                        event.artifact_id = artifact.id
                    elif not event.HasField("artifact_id"):
                        raise InvalidArgumentError("If no artifact is present, given event must have an artifact_id")
                    event.execution_id = execution_id
                    events.append(event)
                artifact_ids.append(artifact.id if artifact is not None
                                    else event.artifact_id if event is not None else -1)
            self._insert_events(sql, events)
            context_ids = [self._context_id(sql, context, reuse_context_if_already_exist, force_reuse_context)
                           for context in contexts]
            linked = sorted({i for i in artifact_ids if i > 0})
            self._link(sql, "Association", "execution_id", [(c, execution_id) for c in context_ids])
            self._link(sql, "Attribution", "artifact_id", [(c, a) for c in context_ids for a in linked])
            return execution_id, artifact_ids, context_ids

    def _reuse_by_external_id(self, sql: Sql, artifacts: list) -> None:
        wanted = {a.external_id: a for a in artifacts if a.external_id}
        for part in id_chunks(list(wanted)):
            for artifact_id, external_id in sql.rows("SELECT id, external_id FROM Artifact WHERE external_id IN :x",
                                                     {"x": part}):
                wanted[external_id].id = artifact_id

    def _context_id(self, sql: Sql, context, reuse: bool, force_reuse: bool) -> int:
        if context.HasField("id") and force_reuse:
            if sql.first("SELECT id FROM Context WHERE id = :i", {"i": context.id}) is None:
                raise NotFoundError(f"Context with ID {context.id} was not found in MLMD")
            return context.id
        if context.HasField("id") or not reuse:
            return self._upsert_node(sql, context, None)
        query = "SELECT id FROM Context WHERE type_id = :t AND name = :n"
        found = sql.scalar(query, {"t": context.type_id, "n": context.name})
        if found is not None:
            return found
        try:  # another writer may create it meanwhile: a savepoint keeps this transaction usable
            with savepoint(sql):
                return self._upsert_node(sql, context, None)
        except self.engine.dialect.dbapi.IntegrityError:
            return sql.scalar(query, {"t": context.type_id, "n": context.name})

    def _stored_nodes(self, sql: Sql, message: type, ids: list[int]) -> dict[int, tuple]:
        """``(row, property rows)`` of the stored nodes among ``ids``, for :meth:`_upsert_node`."""
        if not ids:
            return {}
        table, property_table, owner, columns = _NODE_TABLES[message]
        found: dict[int, tuple] = {}
        for part in id_chunks(ids):
            rows = {r[0]: r for r in sql.rows(f"SELECT id, type_id, {', '.join(columns)} FROM {table} WHERE id IN :i",
                                              {"i": part})}
            properties: dict[int, dict] = {i: {} for i in rows}
            for owner_id, name, custom, *values in sql.rows(
                    f"SELECT {owner}, name, is_custom_property, int_value, double_value, string_value, bool_value "
                    f"FROM {property_table} WHERE {owner} IN :i", {"i": part}):
                properties[owner_id][(name, bool(custom))] = values
            found.update({i: (row, properties[i]) for i, row in rows.items()})
        return found

    def _upsert_node(self, sql: Sql, node, field_mask_paths: Sequence[str] | None, stored: tuple | None = None) -> int:
        table, property_table, owner, columns = _NODE_TABLES[type(node)]
        if node.HasField("id"):
            stored = stored or self._stored_nodes(sql, type(node), [node.id]).get(node.id)
            if stored is None:
                raise InvalidArgumentError(f"Cannot find the given id {node.id}")
            row, properties = stored
            if node.HasField("type_id") and node.type_id != row[1]:
                raise InvalidArgumentError(f"Given type_id {node.type_id} is different from the one known before: "
                                           f"{row[1]}")
            self._validate(sql, node, row[1], field_mask_paths)
            return self._update_node(sql, node, row, properties, field_mask_paths)
        if not node.HasField("type_id"):
            raise InvalidArgumentError(f"No type id is given for the new {table.lower()}")
        self._validate(sql, node, node.type_id, None)
        if isinstance(node, pb.Context) and not node.name:
            raise InvalidArgumentError("Context name should not be empty")
        now = _now_ms()
        values = [getattr(node, column) if node.HasField(column) else None for column in columns]
        if "external_id" in columns and values[columns.index("external_id")] == "":
            values[columns.index("external_id")] = None
        names = ("type_id", *columns, "create_time_since_epoch", "last_update_time_since_epoch")
        node_id = sql.insert(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(':' + n for n in names)})",
                             dict(zip(names, (node.type_id, *values, now, now))))
        sql.insert_rows(f"INSERT INTO {property_table} ({owner}, name, is_custom_property, int_value, double_value, "
                        "string_value, bool_value) VALUES",
                        [(node_id, name, custom, *values) for (name, custom), values in _property_rows(node)])
        return node_id

    def _update_node(self, sql: Sql, node, row: tuple, stored: dict, field_mask_paths) -> int:
        """MLMD's UpdateNode: properties inserted, changed or deleted as ``node`` (or the mask)
        says, columns changed, and the update time set only if anything changed."""
        table, property_table, owner, columns = _NODE_TABLES[type(node)]
        mask = set(field_mask_paths or ())
        wanted = dict(_property_rows(node))
        changed = []
        for key in set(stored) | set(wanted):
            kind = "custom_properties" if key[1] else "properties"
            if mask and f"{kind}.{key[0]}" not in mask and kind not in mask:
                continue
            old, new = stored.get(key), wanted.get(key)
            if old is None or new is None or not _same_value(old, new):
                changed.append(key)
        for custom in (False, True):
            names = [name for name, is_custom in changed if is_custom == custom]
            if names:
                sql.run(f"DELETE FROM {property_table} WHERE {owner} = :o AND is_custom_property = :c AND name IN :n",
                        {"o": node.id, "c": custom, "n": names})
        sql.insert_rows(f"INSERT INTO {property_table} ({owner}, name, is_custom_property, int_value, double_value, "
                        "string_value, bool_value) VALUES",
                        [(node.id, *key, *wanted[key]) for key in sorted(changed) if key in wanted])
        updates = {}
        for column, old in zip(columns, row[2:]):
            if mask and column not in mask:
                continue
            value = getattr(node, column) if node.HasField(column) else None
            if column == "external_id" and value == "":
                value = None
            if value != old:
                updates[column] = value
        if updates or changed:
            assignments = "".join(f"{c} = :{c}, " for c in updates)
            sql.run(f"UPDATE {table} SET {assignments}last_update_time_since_epoch = :now WHERE id = :id",
                    {**updates, "now": _now_ms(), "id": node.id})
        return node.id

    def _validate(self, sql: Sql, node, type_id: int, field_mask_paths) -> None:
        """MLMD's property check: a typed property must be declared on the type, with its type."""
        declared = self._declared.get(type_id)
        if declared is None or any(name not in declared for name in node.properties):
            declared = self._declared[type_id] = self._declared_properties(sql, type_id)
        mask = set(field_mask_paths or ())
        for name, value in node.properties.items():
            if mask and f"properties.{name}" not in mask and "properties" not in mask:
                continue
            if name not in declared:
                raise InvalidArgumentError(f"Found unknown property: {name}")
            if _VALUE_OF_TYPE.get(declared[name]) != value.WhichOneof("value"):
                raise InvalidArgumentError(f"Found unmatched property type: {name}")

    @staticmethod
    def _declared_properties(sql: Sql, type_id: int) -> dict[str, int]:
        found = dict(sql.rows("SELECT name, data_type FROM TypeProperty WHERE type_id = :t", {"t": type_id}))
        if not found and sql.first("SELECT id FROM Type WHERE id = :t", {"t": type_id}) is None:
            raise InvalidArgumentError(f"Cannot find type with id {type_id}")
        return found

    # -- events and links ----------------------------------------------------------------------
    def put_events(self, events: Sequence) -> None:
        with self._writing() as sql:
            self._insert_events(sql, [pb.convert(event, pb.Event) for event in events])

    def _insert_events(self, sql: Sql, events: list) -> None:
        steps = []
        for event in events:
            if not event.HasField("artifact_id") or not event.HasField("execution_id") or not event.HasField("type"):
                raise InvalidArgumentError("An event needs an artifact id, an execution id and a type")
            event_id = sql.insert("INSERT INTO Event (artifact_id, execution_id, type, milliseconds_since_epoch) "
                                  "VALUES (:a, :e, :t, :ms)",
                                  {"a": event.artifact_id, "e": event.execution_id, "t": event.type,
                                   "ms": event.milliseconds_since_epoch if event.HasField("milliseconds_since_epoch")
                                   else _now_ms()})
            steps += [(event_id, step.HasField("index"), step.index if step.HasField("index") else None,
                       step.key if step.HasField("key") else None) for step in event.path.steps]
        sql.insert_rows("INSERT INTO EventPath (event_id, is_index_step, step_index, step_key) VALUES", steps)

    def put_attributions_and_associations(self, attributions: Sequence, associations: Sequence) -> None:
        """Link artifacts and executions to contexts; a link already stored is left as it is."""
        with self._writing() as sql:
            self._link(sql, "Attribution", "artifact_id", [(a.context_id, a.artifact_id) for a in attributions])
            self._link(sql, "Association", "execution_id", [(a.context_id, a.execution_id) for a in associations])

    def _link(self, sql: Sql, table: str, column: str, pairs: list[tuple[int, int]]) -> None:
        """Insert the (context, node) links not yet stored, in order; one that a concurrent writer
        stores meanwhile is not an error."""
        if not pairs:
            return
        contexts = sorted({c for c, _ in pairs})
        known = set()
        for part in id_chunks(sorted({n for _, n in pairs})):
            known |= set(sql.rows(f"SELECT context_id, {column} FROM {table} WHERE context_id IN :c "
                                  f"AND {column} IN :n", {"c": contexts, "n": part}))
        missing = list(dict.fromkeys(pair for pair in pairs if pair not in known))
        ignore = ("INSERT IGNORE INTO", "") if self.backend == "mysql" else ("INSERT INTO", " ON CONFLICT DO NOTHING")
        sql.insert_rows(f"{ignore[0]} {table} (context_id, {column}) VALUES", missing, ignore[1])

    def put_parent_contexts(self, parent_contexts: Sequence) -> None:
        with self._writing() as sql:
            for link in parent_contexts:
                if link.child_id == link.parent_id:
                    raise InvalidArgumentError("A context cannot be its own parent")
                sql.run("INSERT INTO ParentContext (context_id, parent_context_id) VALUES (:c, :p)",
                        {"c": link.child_id, "p": link.parent_id})

    # -- what the writers look up often -------------------------------------------------------
    def span_artifact_ids(self, pipeline: str, type_name: str, span_min: int, span_max: int) -> list[int]:
        """Ids of the LIVE ``type_name`` artifacts of the pipeline context ``pipeline`` whose
        ``span`` property lies in ``[span_min, span_max]`` (the filter query TFX's resolver runs)."""
        from airflow_graphlets.store import schema

        with self._reading() as sql:
            return [i for (i,) in sql.rows(
                "SELECT a.id FROM Artifact a JOIN Type t ON t.id = a.type_id AND t.type_kind = 1 AND t.name = :type "
                "JOIN ArtifactProperty p ON p.artifact_id = a.id AND p.name = :span AND p.is_custom_property = :no "
                "JOIN Attribution at ON at.artifact_id = a.id JOIN Context c ON c.id = at.context_id AND c.name = :p "
                "JOIN Type ct ON ct.id = c.type_id AND ct.type_kind = 2 AND ct.name = :context_type "
                "WHERE a.state = :live AND p.int_value BETWEEN :lo AND :hi ORDER BY a.id",
                {"type": type_name, "span": schema.SPAN, "no": False, "p": pipeline,
                 "context_type": schema.PIPELINE_CONTEXT, "live": pb.Artifact.LIVE, "lo": int(span_min),
                 "hi": int(span_max)})]

    def executions_with_property_since(self, name: str, since_ms: int, limit: int) -> list:
        """Executions created after ``since_ms`` holding a non-empty string custom property ``name``."""
        with self._reading() as sql:
            ids = [i for (i,) in sql.rows(
                "SELECT e.id FROM Execution e JOIN ExecutionProperty p ON p.execution_id = e.id AND p.name = :n "
                "AND p.is_custom_property = :yes WHERE p.string_value != '' AND e.create_time_since_epoch > :since "
                f"ORDER BY e.create_time_since_epoch, e.id LIMIT {int(limit)}",
                {"n": name, "yes": True, "since": since_ms})]
        return self.get_executions_by_id(ids)


def install_simple_types(target: Sql | sa.Connection) -> None:
    """Register MLMD's simple types (``mlmd.Dataset`` ... ``mlmd.Deploy``) as ml-metadata does
    when it first opens a store: the base types TFX's types point at."""
    for kind in (ARTIFACT_KIND, EXECUTION_KIND):
        for name in SYSTEM_BASE_TYPES[kind]:
            params = {"k": kind, "n": name}
            if isinstance(target, Sql):
                if target.first("SELECT id FROM Type WHERE type_kind = :k AND name = :n", params) is None:
                    target.run("INSERT INTO Type (name, type_kind) VALUES (:n, :k)", params)
            elif target.execute(sa.text("SELECT id FROM Type WHERE type_kind = :k AND name = :n"), params).first() is None:
                target.execute(sa.text("INSERT INTO Type (name, type_kind) VALUES (:n, :k)"), params)


def _property_rows(node) -> list[tuple[tuple[str, bool], list]]:
    """``((name, is_custom), [int, double, string, bool])`` for each property of ``node``."""
    rows = []
    for is_custom, values in ((False, node.properties), (True, node.custom_properties)):
        for name, value in sorted(values.items()):
            kind = value.WhichOneof("value")
            if kind is None:
                raise InvalidArgumentError(f"The property {name!r} has no value")
            if kind not in _VALUE_COLUMNS:
                raise InvalidArgumentError(f"The property {name!r} holds a {kind}, which airflow-graphlets does not "
                                           "write natively; write it with ml-metadata's client")
            rows.append(((name, is_custom), [getattr(value, kind) if column == kind else None
                                             for column in _VALUE_COLUMNS]))
    return rows


def _same_value(old: list, new: list) -> bool:
    return all((a is None) == (b is None) and (a is None or (bool(a) == b if isinstance(b, bool) else a == b))
               for a, b in zip(old, new))
