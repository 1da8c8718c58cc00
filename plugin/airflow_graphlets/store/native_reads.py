"""Reading MLMD's tables into MLMD's record messages, as ml-metadata's ``MetadataStore`` gets do.

The half of :class:`~airflow_graphlets.store.native_store.NativeStore` that reads: every getter
our code, the reference graphlet reader and MLMD's users call, with ml-metadata's names, argument
shapes and results (nodes ordered by id unless asked otherwise, ``type`` names filled in, unset
columns left unset, properties typed by the column that holds them).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from airflow_graphlets.store import mlmd_proto as pb
from airflow_graphlets.store.sql import IN_LIST_LIMIT, Sql, id_chunks

# MLMD's TypeKind (metadata_source.proto): how the Type table tells its three kinds apart.
EXECUTION_KIND, ARTIFACT_KIND, CONTEXT_KIND = 0, 1, 2
SYSTEM_BASE_TYPES = {  # MLMD's simple types, registered in every store, in MLMD's order
    ARTIFACT_KIND: ("mlmd.Dataset", "mlmd.Model", "mlmd.Metrics", "mlmd.Statistics"),
    EXECUTION_KIND: ("mlmd.Train", "mlmd.Transform", "mlmd.Process", "mlmd.Evaluate", "mlmd.Deploy"),
}
_STRUCT_PREFIX = "mlmd-struct::"  # how MLMD stores a Struct value in string_value
_INPUT_EVENTS = (pb.Event.INPUT, pb.Event.DECLARED_INPUT, pb.Event.INTERNAL_INPUT)
_OUTPUT_EVENTS = (pb.Event.OUTPUT, pb.Event.DECLARED_OUTPUT, pb.Event.INTERNAL_OUTPUT, pb.Event.PENDING_OUTPUT)


class OrderByField(IntEnum):
    """What a listing is ordered by (ml-metadata's ``OrderByField``)."""

    CREATE_TIME = 1
    UPDATE_TIME = 2
    ID = 3


@dataclass(frozen=True)
class ListOptions:
    """Order and size of a listing (ml-metadata's ``ListOptions``; filter queries are not read
    natively: ask with the dedicated getters instead)."""

    limit: int | None = None
    order_by: OrderByField | None = None
    is_asc: bool = True
    filter_query: str | None = None


@dataclass(frozen=True)
class LineageQuery:
    """``get_lineage_subgraph``'s question: the graph within ``max_num_hops`` of these artifacts,
    following events downstream (artifact to the executions reading it to what they wrote),
    upstream, or both."""

    starting_artifact_ids: tuple[int, ...]
    max_num_hops: int = 20
    direction: str = "DOWNSTREAM"  # or UPSTREAM, BIDIRECTIONAL


@dataclass(frozen=True)
class _NodeKind:
    table: str
    property_table: str
    owner_column: str
    message: type
    type_kind: int
    columns: tuple[str, ...]  # besides id and type_id, in the table's order


_ARTIFACTS = _NodeKind("Artifact", "ArtifactProperty", "artifact_id", pb.Artifact, ARTIFACT_KIND,
                       ("uri", "state", "name", "external_id", "create_time_since_epoch",
                        "last_update_time_since_epoch"))
_EXECUTIONS = _NodeKind("Execution", "ExecutionProperty", "execution_id", pb.Execution, EXECUTION_KIND,
                        ("last_known_state", "name", "external_id", "create_time_since_epoch",
                         "last_update_time_since_epoch"))
_CONTEXTS = _NodeKind("Context", "ContextProperty", "context_id", pb.Context, CONTEXT_KIND,
                      ("name", "external_id", "create_time_since_epoch", "last_update_time_since_epoch"))
_NEWEST_FIRST = ListOptions(order_by=OrderByField.CREATE_TIME, is_asc=False)
_TYPE_MESSAGES = {ARTIFACT_KIND: pb.ArtifactType, EXECUTION_KIND: pb.ExecutionType, CONTEXT_KIND: pb.ContextType}
_ORDER_COLUMNS = {OrderByField.CREATE_TIME: "create_time_since_epoch",
                  OrderByField.UPDATE_TIME: "last_update_time_since_epoch", OrderByField.ID: "id"}


def set_property_from_row(target: Any, int_value, double_value, string_value, byte_value, proto_value,
                          bool_value) -> None:
    """Fill an MLMD ``Value`` from the columns of one property row, as MLMD reads it back."""
    if int_value is not None:
        target.int_value = int(int_value)
    elif double_value is not None:
        target.double_value = float(double_value)
    elif string_value is not None:
        if string_value.startswith(_STRUCT_PREFIX):
            target.struct_value.ParseFromString(base64.b64decode(string_value[len(_STRUCT_PREFIX):]))
        else:
            target.string_value = string_value
    elif proto_value is not None:
        target.proto_value.ParseFromString(bytes(proto_value))
    elif bool_value is not None:
        target.bool_value = bool(bool_value)
    elif byte_value is not None:
        target.string_value = bytes(byte_value).decode("utf-8", "replace")


class NativeReads:
    """MLMD's getters over one SQLAlchemy engine; mixed into ``NativeStore``."""

    def _reading(self):
        """A connection in a read transaction (given by ``NativeStore``)."""
        raise NotImplementedError

    # -- types ---------------------------------------------------------------------------------
    def get_artifact_types(self) -> list:
        return self._types(ARTIFACT_KIND)

    def get_execution_types(self) -> list:
        return self._types(EXECUTION_KIND)

    def get_context_types(self) -> list:
        return self._types(CONTEXT_KIND)

    def get_artifact_types_by_id(self, type_ids: Iterable[int]) -> list:
        return self._types(ARTIFACT_KIND, ids=list(type_ids))

    def get_execution_types_by_id(self, type_ids: Iterable[int]) -> list:
        return self._types(EXECUTION_KIND, ids=list(type_ids))

    def get_context_types_by_id(self, type_ids: Iterable[int]) -> list:
        return self._types(CONTEXT_KIND, ids=list(type_ids))

    def get_artifact_type(self, type_name: str, type_version: str | None = None):
        return self._one_type(ARTIFACT_KIND, type_name, type_version)

    def get_execution_type(self, type_name: str, type_version: str | None = None):
        return self._one_type(EXECUTION_KIND, type_name, type_version)

    def get_context_type(self, type_name: str, type_version: str | None = None):
        return self._one_type(CONTEXT_KIND, type_name, type_version)

    def _one_type(self, kind: int, name: str, version: str | None):
        from airflow_graphlets.store.mlmd_errors import NotFoundError

        found = [t for t in self._types(kind, name) if (t.version if t.HasField("version") else None) == version]
        if not found:
            raise NotFoundError(f"No type found for query, name: `{name}`, version: `{version}`")
        return found[0]

    def _types(self, kind: int, name: str | None = None, ids: list[int] | None = None) -> list:
        where = "type_kind = :kind" + (" AND name = :name" if name is not None else "")
        with self._reading() as sql:
            if ids is not None:
                rows = [row for part in id_chunks(ids) for row in sql.rows(
                    f"SELECT id, name, version, description, external_id FROM Type WHERE {where} AND id IN :ids "
                    "ORDER BY id", {"kind": kind, "name": name, "ids": part})]
            else:
                rows = sql.rows(f"SELECT id, name, version, description, external_id FROM Type WHERE {where} "
                                "ORDER BY id", {"kind": kind, "name": name})
            rows = [r for r in rows if r[1] not in SYSTEM_BASE_TYPES.get(kind, ())]
            properties: dict[int, list] = {}
            bases: dict[int, str] = {}
            for part in id_chunks([r[0] for r in rows]):
                for type_id, prop, data_type in sql.rows(
                        "SELECT type_id, name, data_type FROM TypeProperty WHERE type_id IN :ids ORDER BY name",
                        {"ids": part}):
                    properties.setdefault(type_id, []).append((prop, data_type))
                for type_id, base in sql.rows("SELECT p.type_id, t.name FROM ParentType p JOIN Type t ON "
                                              "t.id = p.parent_type_id WHERE p.type_id IN :ids", {"ids": part}):
                    bases[type_id] = base
        message = _TYPE_MESSAGES[kind]
        found = []
        for type_id, type_name, *optional in rows:
            proto = message(id=type_id, name=type_name)
            for field, value in zip(("version", "description", "external_id"), optional):
                if value is not None:
                    setattr(proto, field, value)
            for prop, data_type in properties.get(type_id, ()):
                proto.properties[prop] = int(data_type or 0)
            base = bases.get(type_id)
            if base in SYSTEM_BASE_TYPES.get(kind, ()):
                proto.base_type = SYSTEM_BASE_TYPES[kind].index(base) + 1
            found.append(proto)
        return found

    # -- nodes ---------------------------------------------------------------------------------
    def get_artifacts(self, list_options: ListOptions | None = None) -> list:
        return self._listing(_ARTIFACTS, list_options)

    def get_executions(self, list_options: ListOptions | None = None) -> list:
        return self._listing(_EXECUTIONS, list_options)

    def get_contexts(self, list_options: ListOptions | None = None) -> list:
        return self._listing(_CONTEXTS, list_options)

    def get_artifacts_by_id(self, artifact_ids: Iterable[int]) -> list:
        return self._nodes_where(_ARTIFACTS, "n.id IN :ids", {"ids": list(artifact_ids)})

    def get_executions_by_id(self, execution_ids: Iterable[int]) -> list:
        return self._nodes_where(_EXECUTIONS, "n.id IN :ids", {"ids": list(execution_ids)})

    def get_contexts_by_id(self, context_ids: Iterable[int]) -> list:
        return self._nodes_where(_CONTEXTS, "n.id IN :ids", {"ids": list(context_ids)})

    def get_artifacts_by_external_ids(self, external_ids: Iterable[str]) -> list:
        return self._nodes_where(_ARTIFACTS, "n.external_id IN :ids", {"ids": list(external_ids)})

    def get_executions_by_external_ids(self, external_ids: Iterable[str]) -> list:
        return self._nodes_where(_EXECUTIONS, "n.external_id IN :ids", {"ids": list(external_ids)})

    def get_artifacts_by_uri(self, uri: str) -> list:
        return self._nodes_where(_ARTIFACTS, "n.uri = :uri", {"uri": uri})

    def get_artifacts_by_type(self, type_name: str, type_version: str | None = None) -> list:
        return self._nodes_of_type(_ARTIFACTS, type_name, type_version)

    def get_executions_by_type(self, type_name: str, type_version: str | None = None) -> list:
        return self._nodes_of_type(_EXECUTIONS, type_name, type_version)

    def get_contexts_by_type(self, type_name: str, type_version: str | None = None) -> list:
        return self._nodes_of_type(_CONTEXTS, type_name, type_version)

    def get_context_by_type_and_name(self, type_name: str, context_name: str, type_version: str | None = None):
        found = self._nodes_where(_CONTEXTS, "n.name = :name AND n.type_id IN (SELECT id FROM Type WHERE "
                                  "type_kind = :kind AND name = :type_name AND " + _version_clause(type_version) + ")",
                                  {"name": context_name, "kind": CONTEXT_KIND, "type_name": type_name,
                                   "version": type_version})
        return found[0] if found else None

    def get_executions_by_context(self, context_id: int, list_options: ListOptions | None = None) -> list:
        """A context's executions; newest first unless ``list_options`` says otherwise, as MLMD."""
        return self._nodes_where(_EXECUTIONS, "n.id IN (SELECT execution_id FROM Association WHERE context_id = :c)",
                                 {"c": context_id}, list_options or _NEWEST_FIRST)

    def get_artifacts_by_context(self, context_id: int, list_options: ListOptions | None = None) -> list:
        """A context's artifacts; newest first unless ``list_options`` says otherwise, as MLMD."""
        return self._nodes_where(_ARTIFACTS, "n.id IN (SELECT artifact_id FROM Attribution WHERE context_id = :c)",
                                 {"c": context_id}, list_options or _NEWEST_FIRST)

    def get_contexts_by_execution(self, execution_id: int) -> list:
        return self._nodes_where(_CONTEXTS, "n.id IN (SELECT context_id FROM Association WHERE execution_id = :e)",
                                 {"e": execution_id})

    def get_contexts_by_artifact(self, artifact_id: int) -> list:
        return self._nodes_where(_CONTEXTS, "n.id IN (SELECT context_id FROM Attribution WHERE artifact_id = :a)",
                                 {"a": artifact_id})

    def get_parent_contexts_by_context(self, context_id: int) -> list:
        return self._nodes_where(_CONTEXTS, "n.id IN (SELECT parent_context_id FROM ParentContext "
                                 "WHERE context_id = :c)", {"c": context_id})

    def get_children_contexts_by_context(self, context_id: int) -> list:
        return self._nodes_where(_CONTEXTS, "n.id IN (SELECT context_id FROM ParentContext "
                                 "WHERE parent_context_id = :c)", {"c": context_id})

    # -- events and lineage --------------------------------------------------------------------
    def get_events_by_execution_ids(self, execution_ids: Iterable[int]) -> list:
        return self._events("execution_id", list(execution_ids))

    def get_events_by_artifact_ids(self, artifact_ids: Iterable[int]) -> list:
        return self._events("artifact_id", list(artifact_ids))

    def get_lineage_subgraph(self, query_options: LineageQuery, field_mask_paths: Sequence[str] | None = None):
        """The artifacts, executions and events within ``max_num_hops`` of the starting artifacts
        (each artifact-execution edge is a hop), as MLMD's ``get_lineage_subgraph`` returns them."""
        artifact_ids = set(query_options.starting_artifact_ids)
        execution_ids: set[int] = set()
        downstream = query_options.direction in ("DOWNSTREAM", "BIDIRECTIONAL")
        upstream = query_options.direction in ("UPSTREAM", "BIDIRECTIONAL")
        frontier_artifacts, frontier_executions = set(artifact_ids), set()
        for hop in range(query_options.max_num_hops):
            if hop % 2 == 0:
                events = self.get_events_by_artifact_ids(sorted(frontier_artifacts)) if frontier_artifacts else []
                reached = {e.execution_id for e in events
                           if (downstream and e.type in _INPUT_EVENTS) or (upstream and e.type in _OUTPUT_EVENTS)}
                frontier_executions, frontier_artifacts = reached - execution_ids, set()
                execution_ids |= reached
            else:
                events = self.get_events_by_execution_ids(sorted(frontier_executions)) if frontier_executions else []
                reached = {e.artifact_id for e in events
                           if (downstream and e.type in _OUTPUT_EVENTS) or (upstream and e.type in _INPUT_EVENTS)}
                frontier_artifacts, frontier_executions = reached - artifact_ids, set()
                artifact_ids |= reached
        wanted = set(field_mask_paths or ("artifacts", "executions", "events"))
        graph = pb.LineageGraph()
        if "artifacts" in wanted:
            graph.artifacts.extend(self.get_artifacts_by_id(sorted(artifact_ids)))
        if "executions" in wanted:
            graph.executions.extend(self.get_executions_by_id(sorted(execution_ids)))
        if "events" in wanted:
            graph.events.extend(e for e in self.get_events_by_execution_ids(sorted(execution_ids))
                                if e.artifact_id in artifact_ids)
        return graph

    def _events(self, column: str, ids: list[int]) -> list:
        found = []
        with self._reading() as sql:
            for part in id_chunks(ids):
                rows = sql.rows(f"SELECT id, artifact_id, execution_id, type, milliseconds_since_epoch FROM Event "
                                f"WHERE {column} IN :ids ORDER BY {column}, id", {"ids": part})
                steps: dict[int, list] = {}
                for event_ids in id_chunks([r[0] for r in rows]):
                    for event_id, is_index, index, key in sql.rows(
                            "SELECT event_id, is_index_step, step_index, step_key FROM EventPath "
                            "WHERE event_id IN :ids", {"ids": event_ids}):
                        steps.setdefault(event_id, []).append((is_index, index, key))
                for event_id, artifact_id, execution_id, event_type, milliseconds in rows:
                    event = pb.Event(artifact_id=artifact_id, execution_id=execution_id, type=event_type)
                    if milliseconds is not None:
                        event.milliseconds_since_epoch = milliseconds
                    for is_index, index, key in steps.get(event_id, ()):
                        step = event.path.steps.add()
                        if is_index:
                            step.index = index
                        else:
                            step.key = key
                    found.append(event)
        return found

    def _listing(self, kind: _NodeKind, options: ListOptions | None) -> list:
        if options is not None and options.filter_query:
            raise NotImplementedError(
                "airflow-graphlets' native MLMD store does not evaluate MLMD filter queries; install "
                "airflow-graphlets[mlmd] and use ml-metadata's MetadataStore for them.")
        return self._nodes_where(kind, "1 = 1", {}, options)

    def _nodes_of_type(self, kind: _NodeKind, type_name: str, version: str | None) -> list:
        return self._nodes_where(kind, "n.type_id IN (SELECT id FROM Type WHERE type_kind = :kind AND "
                                 "name = :type_name AND " + _version_clause(version) + ")",
                                 {"kind": kind.type_kind, "type_name": type_name, "version": version})

    def _nodes_where(self, kind: _NodeKind, where: str, params: dict[str, Any],
                     options: ListOptions | None = None) -> list:
        order = "n.id"
        limit = ""
        if options is not None:
            column = _ORDER_COLUMNS[options.order_by or OrderByField.CREATE_TIME]
            direction = "ASC" if options.is_asc else "DESC"
            order = f"n.{column} {direction}, n.id {direction}"
            if options.limit:
                limit = f" LIMIT {int(options.limit)}"
        columns = ", ".join(f"n.{c}" for c in kind.columns)
        statement = (f"SELECT n.id, n.type_id, t.name, {columns} FROM {kind.table} n JOIN Type t ON t.id = n.type_id "
                     f"WHERE {where} ORDER BY {order}{limit}")
        with self._reading() as sql:
            if "ids" in params:
                rows = [row for part in id_chunks(params["ids"])
                        for row in sql.rows(statement, {**params, "ids": part})]
                if len(params["ids"]) > IN_LIST_LIMIT:  # several lists: put the chunks' rows in id order
                    rows.sort(key=lambda r: r[0])
            else:
                rows = sql.rows(statement, params)
            properties = self._properties(sql, kind, [r[0] for r in rows])
        return [node_from_row(kind.message, kind.columns, row, properties.get(row[0], ())) for row in rows]

    def _properties(self, sql: Sql, kind: _NodeKind, ids: list[int]) -> dict[int, list]:
        found: dict[int, list] = {}
        for part in id_chunks(ids):
            for row in sql.rows(
                    f"SELECT {kind.owner_column}, name, is_custom_property, int_value, double_value, string_value, "
                    f"byte_value, proto_value, bool_value FROM {kind.property_table} WHERE {kind.owner_column} IN :ids",
                    {"ids": part}):
                found.setdefault(row[0], []).append((row[1], bool(row[2]), row[3:]))
        return found


def node_from_row(message: type, columns: tuple[str, ...], row: tuple, properties) -> Any:
    """A node message from ``(id, type_id, type name, *columns)`` and its property rows."""
    node = message(id=row[0], type_id=row[1], type=row[2])
    for column, value in zip(columns, row[3:]):
        if value is not None:
            setattr(node, column, value)
    for name, is_custom, values in properties:
        set_property_from_row((node.custom_properties if is_custom else node.properties)[name], *values)
    return node


def _version_clause(version: str | None) -> str:
    return "version IS NULL" if version is None else "version = :version"
