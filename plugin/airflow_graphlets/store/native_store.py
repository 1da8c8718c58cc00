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
from sqlalchemy.exc import DBAPIError, IntegrityError

from airflow_graphlets.errors import first_line
from airflow_graphlets.store import mlmd_proto as pb
from airflow_graphlets.store.mlmd_errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)
from airflow_graphlets.store.native_reads import (
    ARTIFACT_KIND,
    CONTEXT_KIND,
    EXECUTION_KIND,
    SYSTEM_BASE_TYPES,
    NativeReads,
    chunks,
)
from airflow_graphlets.store.uri import StoreConfig

_VALUE_COLUMNS = {"int_value": "int_value", "double_value": "double_value", "string_value": "string_value",
                  "bool_value": "bool_value"}
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
    """A read-write engine on the store's database (the schema must exist: ``store/bootstrap.py``).

    SQLite transactions that write start with ``BEGIN IMMEDIATE``, so two writers queue on the
    file lock instead of one failing to upgrade its read lock."""
    if config.backend == "sqlite":
        engine = sa.create_engine(f"sqlite:///{config.path}", connect_args={"timeout": 60, "check_same_thread": False},
                                  poolclass=sa.pool.NullPool)

        @sa_event.listens_for(engine, "connect")
        def _autocommit_driver(dbapi_connection, _record) -> None:
            dbapi_connection.isolation_level = None  # SQLAlchemy's BEGIN below is the only one

        @sa_event.listens_for(engine, "begin")
        def _begin(conn) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("writing") else "BEGIN")

        return engine
    # READ COMMITTED on MySQL as on PostgreSQL: a writer that lost a race to insert a row reads
    # the winner's row in the same transaction (REPEATABLE READ would keep its older snapshot).
    return sa.create_engine(config.sqlalchemy_url(), pool_pre_ping=True, pool_size=2, max_overflow=4,
                            isolation_level="READ COMMITTED",
                            connect_args={"connect_timeout": _CONNECT_TIMEOUT_SECONDS})


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

    def close(self) -> None:
        """Release the store's database connections."""
        if self._own_engine:
            self.engine.dispose()

    def __repr__(self) -> str:
        return f"NativeStore({self.config})"

    # -- transactions --------------------------------------------------------------------------
    @contextlib.contextmanager
    def _reading(self) -> Iterator[sa.Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
                conn.rollback()
        except DBAPIError as err:
            raise UnavailableError(f"The MLMD store {self.config} failed: {first_line(err.orig or err)}") from err

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sa.Connection]:
        try:
            with self.engine.connect() as conn:
                conn.info["writing"] = True
                try:
                    with conn.begin():
                        yield conn
                finally:
                    conn.info.pop("writing", None)
        except IntegrityError as err:
            raise AlreadyExistsError(f"Given node already exists: {first_line(err.orig or err)}") from err
        except DBAPIError as err:
            raise UnavailableError(f"The MLMD store {self.config} failed: {first_line(err.orig or err)}") from err

    def _insert(self, conn: sa.Connection, statement: str, params: dict[str, Any]) -> int:
        """Run an INSERT of one row with an auto id; the new id."""
        if self.backend == "mysql":
            return conn.execute(sa.text(statement), params).lastrowid
        return conn.execute(sa.text(statement + " RETURNING id"), params).scalar_one()

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
        with self._writing() as conn:
            self._lock_types(conn)
            row = conn.execute(sa.text("SELECT id FROM Type WHERE type_kind = :kind AND name = :name AND "
                                       + ("version IS NULL" if version is None else "version = :version")),
                               {"kind": kind, "name": proto.name, "version": version}).first()
            if row is None:
                return self._create_type(conn, kind, proto, version)
            type_id = row.id
            stored = dict(conn.execute(sa.text("SELECT name, data_type FROM TypeProperty WHERE type_id = :t"),
                                       {"t": type_id}).all())
            for name, data_type in proto.properties.items():
                if name in stored and stored[name] != data_type:
                    raise AlreadyExistsError(f"Type already exists with different property type: {name}")
            missing = [name for name in proto.properties if name not in stored]
            if missing and not can_add_fields:
                raise AlreadyExistsError(f"Type already exists with different properties: {proto.name}")
            if set(stored) - set(proto.properties) and not can_omit_fields:
                raise AlreadyExistsError(f"Type already exists with more properties: {proto.name}")
            for name in missing:
                conn.execute(sa.text("INSERT INTO TypeProperty (type_id, name, data_type) VALUES (:t, :n, :d)"),
                             {"t": type_id, "n": name, "d": proto.properties[name]})
            return type_id

    def _create_type(self, conn: sa.Connection, kind: int, proto, version: str | None) -> int:
        type_id = self._insert(conn, "INSERT INTO Type (name, version, type_kind, description, external_id) "
                               "VALUES (:name, :version, :kind, :description, :external_id)",
                               {"name": proto.name, "version": version, "kind": kind,
                                "description": proto.description if proto.HasField("description") else None,
                                "external_id": proto.external_id or None})
        for name, data_type in sorted(proto.properties.items()):
            conn.execute(sa.text("INSERT INTO TypeProperty (type_id, name, data_type) VALUES (:t, :n, :d)"),
                         {"t": type_id, "n": name, "d": data_type})
        if proto.HasField("base_type") and proto.base_type:
            base_name = SYSTEM_BASE_TYPES[kind][proto.base_type - 1]
            base_id = conn.execute(sa.text("SELECT id FROM Type WHERE type_kind = :k AND name = :n"),
                                   {"k": kind, "n": base_name}).scalar()
            if base_id is None:  # ml-metadata registers its simple types on connect; a store made otherwise may lack them
                install_simple_types(conn)
                base_id = conn.execute(sa.text("SELECT id FROM Type WHERE type_kind = :k AND name = :n"),
                                       {"k": kind, "n": base_name}).scalar_one()
            conn.execute(sa.text("INSERT INTO ParentType (type_id, parent_type_id) VALUES (:t, :p)"),
                         {"t": type_id, "p": base_id})
        return type_id

    def _lock_types(self, conn: sa.Connection) -> None:
        """Serialise type registration (MLMD's Type table has no unique name key)."""
        if self.backend == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _TYPE_LOCK})
        elif self.backend == "mysql":
            # The Type table's MLMDEnv-style guard: a row lock on the schema version row.
            conn.execute(sa.text("SELECT schema_version FROM MLMDEnv FOR UPDATE"))
        # SQLite: BEGIN IMMEDIATE already holds the database's write lock.

    # -- nodes ---------------------------------------------------------------------------------
    def put_artifacts(self, artifacts: Sequence, field_mask_paths: Sequence[str] | None = None) -> list[int]:
        with self._writing() as conn:
            return [self._upsert_node(conn, pb.convert(a, pb.Artifact), field_mask_paths) for a in artifacts]

    def put_executions(self, executions: Sequence, field_mask_paths: Sequence[str] | None = None) -> list[int]:
        with self._writing() as conn:
            return [self._upsert_node(conn, pb.convert(e, pb.Execution), field_mask_paths) for e in executions]

    def put_contexts(self, contexts: Sequence, field_mask_paths: Sequence[str] | None = None) -> list[int]:
        with self._writing() as conn:
            return [self._upsert_node(conn, pb.convert(c, pb.Context), field_mask_paths) for c in contexts]

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
        with self._writing() as conn:
            artifact_ids = []
            for artifact, _ in pairs:
                if artifact is None:
                    continue
                if not artifact.HasField("id") and reuse_artifact_if_already_exist_by_external_id \
                        and artifact.external_id:
                    found = conn.execute(sa.text("SELECT id FROM Artifact WHERE external_id = :x"),
                                         {"x": artifact.external_id}).scalar()
                    if found is not None:
                        artifact.id = found
                artifact.id = self._upsert_node(conn, artifact, None)
            execution_id = self._upsert_node(conn, execution, None)
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
                    self._insert_event(conn, event)
                artifact_ids.append(artifact.id if artifact is not None
                                    else event.artifact_id if event is not None else -1)
            context_ids = []
            linked_artifacts = sorted({i for i in artifact_ids if i > 0})
            for context in contexts:
                if context.HasField("id") and force_reuse_context:
                    if conn.execute(sa.text("SELECT id FROM Context WHERE id = :i"), {"i": context.id}).first() is None:
                        raise NotFoundError(f"Context with ID {context.id} was not found in MLMD")
                    context_id = context.id
                else:
                    context_id = self._upsert_context(conn, context, reuse_context_if_already_exist)
                context_ids.append(context_id)
                self._link(conn, "Association", "execution_id", context_id, [execution_id])
                self._link(conn, "Attribution", "artifact_id", context_id, linked_artifacts)
            return execution_id, artifact_ids, context_ids

    def _upsert_context(self, conn: sa.Connection, context, reuse: bool) -> int:
        if context.HasField("id") or not reuse:
            return self._upsert_node(conn, context, None)
        found = conn.execute(sa.text("SELECT id FROM Context WHERE type_id = :t AND name = :n"),
                             {"t": context.type_id, "n": context.name}).scalar()
        if found is not None:
            return found
        # Another writer may create it meanwhile: a savepoint keeps this transaction usable.
        try:
            with conn.begin_nested():
                return self._upsert_node(conn, context, None)
        except IntegrityError:
            return conn.execute(sa.text("SELECT id FROM Context WHERE type_id = :t AND name = :n"),
                                {"t": context.type_id, "n": context.name}).scalar_one()

    def _upsert_node(self, conn: sa.Connection, node, field_mask_paths: Sequence[str] | None) -> int:
        table, property_table, owner, columns = _NODE_TABLES[type(node)]
        declared = None
        if node.HasField("id"):
            row = conn.execute(sa.text(f"SELECT type_id, {', '.join(columns)} FROM {table} WHERE id = :i"),
                               {"i": node.id}).first()
            if row is None:
                raise InvalidArgumentError(f"Cannot find the given id {node.id}")
            if node.HasField("type_id") and node.type_id != row.type_id:
                raise InvalidArgumentError(f"Given type_id {node.type_id} is different from the one known before: "
                                           f"{row.type_id}")
            declared = self._declared_properties(conn, row.type_id)
            _validate_properties(node, declared, field_mask_paths)
            return self._update_node(conn, node, row, field_mask_paths)
        if not node.HasField("type_id"):
            raise InvalidArgumentError(f"No type id is given for the new {table.lower()}")
        declared = self._declared_properties(conn, node.type_id)
        _validate_properties(node, declared, None)
        if isinstance(node, pb.Context) and not node.name:
            raise InvalidArgumentError("Context name should not be empty")
        now = _now_ms()
        values = {column: (getattr(node, column) if node.HasField(column) else None) for column in columns}
        if "external_id" in values and values["external_id"] == "":
            values["external_id"] = None
        names = ["type_id", *columns, "create_time_since_epoch", "last_update_time_since_epoch"]
        node_id = self._insert(conn, f"INSERT INTO {table} ({', '.join(names)}) VALUES "
                               f"({', '.join(':' + n for n in names)})",
                               {"type_id": node.type_id, **values, "create_time_since_epoch": now,
                                "last_update_time_since_epoch": now})
        rows = _property_rows(node_id, node)
        if rows:
            conn.execute(sa.text(f"INSERT INTO {property_table} ({owner}, name, is_custom_property, int_value, "
                                 "double_value, string_value, bool_value) VALUES (:o, :n, :c, :i, :d, :s, :b)"), rows)
        return node_id

    def _update_node(self, conn: sa.Connection, node, stored_row, field_mask_paths) -> int:
        """MLMD's UpdateNode: properties inserted, changed or deleted as ``node`` (or the mask)
        says, columns changed, and the update time set only if anything changed."""
        table, property_table, owner, columns = _NODE_TABLES[type(node)]
        mask = set(field_mask_paths or ())
        stored = {(name, bool(custom)): values for name, custom, *values in conn.execute(sa.text(
            f"SELECT name, is_custom_property, int_value, double_value, string_value, bool_value "
            f"FROM {property_table} WHERE {owner} = :o"), {"o": node.id})}
        wanted = {(row["n"], row["c"]): [row["i"], row["d"], row["s"], row["b"]]
                  for row in _property_rows(node.id, node)}
        changed = 0
        for key in set(stored) | set(wanted):
            path = f"{'custom_properties' if key[1] else 'properties'}.{key[0]}"
            if mask and path not in mask and path.split(".")[0] not in mask:
                continue
            old, new = stored.get(key), wanted.get(key)
            if old is not None and new is not None and _same_value(old, new):
                continue
            params = {"o": node.id, "n": key[0], "c": key[1]}
            if old is not None:
                conn.execute(sa.text(f"DELETE FROM {property_table} WHERE {owner} = :o AND name = :n AND "
                                     "is_custom_property = :c"), params)
            if new is not None:
                conn.execute(sa.text(f"INSERT INTO {property_table} ({owner}, name, is_custom_property, int_value, "
                                     "double_value, string_value, bool_value) VALUES (:o, :n, :c, :i, :d, :s, :b)"),
                             {**params, "i": new[0], "d": new[1], "s": new[2], "b": new[3]})
            changed += 1
        updates = {}
        for column in columns:
            if mask and column not in mask:
                continue
            value = getattr(node, column) if node.HasField(column) else None
            if column == "external_id" and value == "":
                value = None
            if value != getattr(stored_row, column):
                updates[column] = value
        if updates or changed:
            assignments = ", ".join(f"{c} = :{c}" for c in updates)
            conn.execute(sa.text(f"UPDATE {table} SET {assignments + ', ' if assignments else ''}"
                                 "last_update_time_since_epoch = :now WHERE id = :id"),
                         {**updates, "now": _now_ms(), "id": node.id})
        return node.id

    def _declared_properties(self, conn: sa.Connection, type_id: int) -> dict[str, int]:
        found = dict(conn.execute(sa.text("SELECT name, data_type FROM TypeProperty WHERE type_id = :t"),
                                  {"t": type_id}).all())
        if not found and conn.execute(sa.text("SELECT id FROM Type WHERE id = :t"), {"t": type_id}).first() is None:
            raise InvalidArgumentError(f"Cannot find type with id {type_id}")
        return found

    # -- events and links ----------------------------------------------------------------------
    def put_events(self, events: Sequence) -> None:
        with self._writing() as conn:
            for event in events:
                self._insert_event(conn, pb.convert(event, pb.Event))

    def _insert_event(self, conn: sa.Connection, event) -> None:
        if not event.HasField("artifact_id") or not event.HasField("execution_id") or not event.HasField("type"):
            raise InvalidArgumentError("An event needs an artifact id, an execution id and a type")
        event_id = self._insert(conn, "INSERT INTO Event (artifact_id, execution_id, type, milliseconds_since_epoch) "
                                "VALUES (:a, :e, :t, :ms)",
                                {"a": event.artifact_id, "e": event.execution_id, "t": event.type,
                                 "ms": event.milliseconds_since_epoch if event.HasField("milliseconds_since_epoch")
                                 else _now_ms()})
        steps = [{"e": event_id, "x": step.HasField("index"), "i": step.index if step.HasField("index") else None,
                  "k": step.key if step.HasField("key") else None} for step in event.path.steps]
        if steps:
            conn.execute(sa.text("INSERT INTO EventPath (event_id, is_index_step, step_index, step_key) "
                                 "VALUES (:e, :x, :i, :k)"), steps)

    def put_attributions_and_associations(self, attributions: Sequence, associations: Sequence) -> None:
        """Link artifacts and executions to contexts; a link already stored is left as it is."""
        with self._writing() as conn:
            for link in attributions:
                self._link(conn, "Attribution", "artifact_id", link.context_id, [link.artifact_id])
            for link in associations:
                self._link(conn, "Association", "execution_id", link.context_id, [link.execution_id])

    def _link(self, conn: sa.Connection, table: str, column: str, context_id: int, node_ids: list[int]) -> None:
        if not node_ids:
            return
        known = set()
        for part in chunks(node_ids):
            known |= {i for (i,) in conn.execute(sa.text(
                f"SELECT {column} FROM {table} WHERE context_id = :c AND {column} IN :ids"
            ).bindparams(sa.bindparam("ids", expanding=True)), {"c": context_id, "ids": part})}
        for node_id in node_ids:
            if node_id in known:
                continue
            try:
                with conn.begin_nested():  # a concurrent writer's identical link is not an error
                    conn.execute(sa.text(f"INSERT INTO {table} (context_id, {column}) VALUES (:c, :n)"),
                                 {"c": context_id, "n": node_id})
            except IntegrityError:
                pass

    def put_parent_contexts(self, parent_contexts: Sequence) -> None:
        with self._writing() as conn:
            for link in parent_contexts:
                if link.child_id == link.parent_id:
                    raise InvalidArgumentError("A context cannot be its own parent")
                conn.execute(sa.text("INSERT INTO ParentContext (context_id, parent_context_id) VALUES (:c, :p)"),
                             {"c": link.child_id, "p": link.parent_id})

    # -- what the writers look up often -------------------------------------------------------
    def span_artifact_ids(self, pipeline: str, type_name: str, span_min: int, span_max: int) -> list[int]:
        """Ids of the LIVE ``type_name`` artifacts of the pipeline context ``pipeline`` whose
        ``span`` property lies in ``[span_min, span_max]`` (the filter query TFX's resolver runs)."""
        from airflow_graphlets.store import schema

        with self._reading() as conn:
            return [i for (i,) in conn.execute(sa.text(
                "SELECT a.id FROM Artifact a JOIN Type t ON t.id = a.type_id AND t.type_kind = 1 AND t.name = :type "
                "JOIN ArtifactProperty p ON p.artifact_id = a.id AND p.name = :span AND p.is_custom_property = :no "
                "JOIN Attribution at ON at.artifact_id = a.id JOIN Context c ON c.id = at.context_id AND c.name = :p "
                "JOIN Type ct ON ct.id = c.type_id AND ct.type_kind = 2 AND ct.name = :context_type "
                "WHERE a.state = :live AND p.int_value BETWEEN :lo AND :hi ORDER BY a.id"),
                {"type": type_name, "span": schema.SPAN, "no": False, "p": pipeline,
                 "context_type": schema.PIPELINE_CONTEXT, "live": pb.Artifact.LIVE, "lo": int(span_min),
                 "hi": int(span_max)})]

    def executions_with_property_since(self, name: str, since_ms: int, limit: int) -> list:
        """Executions created after ``since_ms`` holding a non-empty string custom property ``name``."""
        with self._reading() as conn:
            ids = [i for (i,) in conn.execute(sa.text(
                "SELECT e.id FROM Execution e JOIN ExecutionProperty p ON p.execution_id = e.id AND p.name = :n "
                "AND p.is_custom_property = :yes WHERE p.string_value != '' AND e.create_time_since_epoch > :since "
                f"ORDER BY e.create_time_since_epoch, e.id LIMIT {int(limit)}"),
                {"n": name, "yes": True, "since": since_ms})]
        return self.get_executions_by_id(ids)


def install_simple_types(conn: sa.Connection) -> None:
    """Register MLMD's simple types (``mlmd.Dataset`` ... ``mlmd.Deploy``) as ml-metadata does
    when it first opens a store: the base types TFX's types point at."""
    for kind in (ARTIFACT_KIND, EXECUTION_KIND):
        for name in SYSTEM_BASE_TYPES[kind]:
            exists = conn.execute(sa.text("SELECT id FROM Type WHERE type_kind = :k AND name = :n"),
                                  {"k": kind, "n": name}).first()
            if exists is None:
                conn.execute(sa.text("INSERT INTO Type (name, type_kind) VALUES (:n, :k)"), {"n": name, "k": kind})


def _property_rows(owner_id: int, node) -> list[dict[str, Any]]:
    rows = []
    for is_custom, values in ((False, node.properties), (True, node.custom_properties)):
        for name, value in sorted(values.items()):
            kind = value.WhichOneof("value")
            if kind is None:
                raise InvalidArgumentError(f"The property {name!r} has no value")
            if kind not in _VALUE_COLUMNS:
                raise InvalidArgumentError(f"The property {name!r} holds a {kind}, which airflow-graphlets does not "
                                           "write natively; write it with ml-metadata's client")
            rows.append({"o": owner_id, "n": name, "c": is_custom, "i": None, "d": None, "s": None, "b": None,
                         {"int_value": "i", "double_value": "d", "string_value": "s", "bool_value": "b"}[kind]:
                         getattr(value, kind)})
    return rows


def _same_value(old: list, new: list) -> bool:
    return all((a is None) == (b is None) and (a is None or (bool(a) == b if isinstance(b, bool) else a == b))
               for a, b in zip(old, new))


def _validate_properties(node, declared: dict[str, int], field_mask_paths: Sequence[str] | None) -> None:
    mask = set(field_mask_paths or ())
    for name, value in node.properties.items():
        if mask and f"properties.{name}" not in mask and "properties" not in mask:
            continue
        if name not in declared:
            raise InvalidArgumentError(f"Found unknown property: {name}")
        if _VALUE_OF_TYPE.get(declared[name]) != value.WhichOneof("value"):
            raise InvalidArgumentError(f"Found unmatched property type: {name}")
