"""The set-based queries the bulk reader runs over MLMD's tables, as plain specifications.

Each :class:`ColumnQuery` returns numeric columns and can be split into id ranges, so that a pool
of processes reads one table in pieces side by side; each :class:`RowQuery` returns a few string
rows. Table names are written as MLMD creates them (PostgreSQL folds them to lower case, MySQL
needs them exact). Every integer spliced into SQL is an id this reader read itself, never user text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from airflow_graphlets.graphlets import rules
from airflow_graphlets.store import schema

_TRUE = {"sqlite": "1", "mysql": "1", "postgresql": "TRUE"}  # is_custom_property is BOOLEAN on PostgreSQL
ARTIFACT_PROPERTIES = (schema.SPAN, schema.BLESSED, schema.PUSHED)
TRAINER_PROPERTIES = (*rules.CODE_HASH_PROPERTIES, rules.STRUCTURE_HASH_PROPERTY)


@dataclass(frozen=True)
class ColumnQuery:
    """``SELECT columns FROM source WHERE conditions ORDER BY order``, read as NumPy columns."""

    columns: tuple[str, ...]
    dtypes: tuple[str, ...]  # NumPy dtype of each column once read
    source: str
    conditions: tuple[str, ...] = ()
    order: str = ""
    split_on: str = ""  # an id column; the query may be run in ranges of it
    split_table: str = ""  # the table whose id range bounds the split
    by_key: bool = False  # listed ids looked up in the table's key (see store.inspect.key_lookups)

    def sql_rest(self, id_range: tuple[int, int] | None = None) -> str:
        conditions = list(self.conditions)
        if id_range is not None:
            conditions.append(f"{self.split_on} >= {int(id_range[0])} AND {self.split_on} < {int(id_range[1])}")
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        order = f" ORDER BY {self.order}" if self.order else ""
        return f"FROM {self.source}{where}{order}"


@dataclass(frozen=True)
class RowQuery:
    """A query returning a modest number of rows with strings (names, hashes)."""

    sql: str


class Scope:
    """Conditions keeping a query to some executions and the artifacts they touched.

    Everything (no ids); the executions of some contexts (``context_ids``: pipelines, read
    through sub-queries); or literal ids (``execution_ids`` and ``artifact_ids``: a small window,
    where index look-ups by id beat any plan a sub-query gets).
    """

    def __init__(self, context_ids: list[int] | None, execution_ids: list[int] | None = None,
                 artifact_ids: list[int] | None = None) -> None:
        self.ids = context_ids
        self.execution_ids = execution_ids
        self.artifact_ids = artifact_ids
        # Each list as SQL once: a window's hundreds of ids go into several queries.
        self._execution_list = None if execution_ids is None else ints(execution_ids)
        self._artifact_list = None if artifact_ids is None else ints(artifact_ids)

    def executions(self, column: str) -> tuple[str, ...]:
        if self._execution_list is not None:
            return (f"{column} IN ({self._execution_list})",)
        if self.ids is None:
            return ()
        return (f"{column} IN (SELECT execution_id FROM Association WHERE context_id IN ({ints(self.ids)}))",)

    def artifacts(self, column: str) -> tuple[str, ...]:
        if self._artifact_list is not None:
            return (f"{column} IN ({self._artifact_list})",)
        if self.ids is None:
            return ()
        return (f"{column} IN (SELECT artifact_id FROM Event WHERE {self.executions('execution_id')[0]})",)

    def outside(self, column: str) -> str:
        """A condition keeping ``column`` to executions outside this scope's listed ones."""
        return f"{column} NOT IN ({self._execution_list or 'NULL'})"

    @property
    def listed(self) -> bool:
        """Whether the scope lists its ids (a window), each looked up by key."""
        return self.execution_ids is not None

    def pieces(self, limit: int) -> list["Scope"]:
        """This scope as scopes of at most ``limit`` listed ids each, in id order: given a longer
        list, SQLite scans a whole table instead of looking each id up."""
        if self.execution_ids is None:
            return [self]
        artifacts = self.artifact_ids or []
        count = max(1, -(-len(self.execution_ids) // limit), -(-len(artifacts) // limit))
        if count == 1:
            return [self]
        cut = lambda ids: [ids[len(ids) * k // count:len(ids) * (k + 1) // count] for k in range(count)]
        return [Scope(self.ids, e, a if self.artifact_ids is not None else None)
                for e, a in zip(cut(self.execution_ids), cut(artifacts))]

    def memberships(self, column: str) -> tuple[str, ...]:
        """For reads of a context's members: only the listed executions, when ids are listed."""
        return self.executions(column) if self.execution_ids is not None else ()


def ints(values: Sequence[int]) -> str:
    """An SQL list of integers; ``NULL`` keeps ``IN ()`` valid when there are none."""
    return ", ".join(map(str, map(int, values))) or "NULL"


def events_query(scope: Scope) -> ColumnQuery:
    """The events of the scope's executions: (artifact, execution, event type)."""
    return ColumnQuery(("artifact_id", "execution_id", "type"), ("i8", "i8", "i1"), "Event",
                       scope.executions("execution_id"), split_on="id", split_table="Event")


def column_queries(dialect: str, scope: Scope, pipeline_ids: list[int], run_contexts_sql: str) -> dict[str, ColumnQuery]:
    """Every numeric query, by name, largest first."""
    true = _TRUE[dialect]
    time_join = " ".join(
        f"LEFT JOIN ExecutionProperty {alias} ON {alias}.execution_id = e.id AND {alias}.name = '{name}' "
        f"AND {alias}.is_custom_property = {true}"
        for alias, name in (("s", rules.START_PROPERTY), ("f", rules.END_PROPERTY))
    )
    code = "CASE name " + " ".join(f"WHEN '{n}' THEN {i}" for i, n in enumerate(ARTIFACT_PROPERTIES)) + " END"
    value = "COALESCE(int_value, double_value, CASE WHEN bool_value IS NULL THEN NULL WHEN bool_value THEN 1 ELSE 0 END)"
    reference_keys = ", ".join(f"'{k}'" for k in sorted(rules.REFERENCE_INPUT_KEYS))
    queries = {"events": events_query(scope)}
    executions = ("e.id", "e.type_id", "e.last_known_state", "e.create_time_since_epoch", "e.last_update_time_since_epoch")
    if dialect == "sqlite" or scope.ids is not None:
        # SQLite, and any store read for a few pipelines, join each execution's two time
        # properties through the primary key fastest.
        queries["executions"] = ColumnQuery(
            (*executions, "COALESCE(s.double_value, s.int_value)", "COALESCE(f.double_value, f.int_value)"),
            ("i8", "i8", "i1", "f8", "f8", "f8", "f8"), f"Execution e {time_join}",
            scope.executions("e.id"), order="e.id", split_on="e.id", split_table="Execution", by_key=scope.listed)
    else:
        # PostgreSQL and MySQL read the time properties in one scan of their own: joined per
        # range of executions, each range would scan the property table again.
        queries["executions"] = ColumnQuery(
            executions, ("i8", "i8", "i1", "f8", "f8"), "Execution e",
            scope.executions("e.id"), order="e.id", split_on="e.id", split_table="Execution")
        queries["execution_times"] = ColumnQuery(
            ("execution_id", f"CASE WHEN name = '{rules.END_PROPERTY}' THEN 1 ELSE 0 END",
             "COALESCE(double_value, int_value)"), ("i8", "i1", "f8"), "ExecutionProperty",
            (f"name IN ('{rules.START_PROPERTY}', '{rules.END_PROPERTY}')", f"is_custom_property = {true}",
             *scope.executions("execution_id")))
    return queries | {
        "artifacts": ColumnQuery(
            ("id", "type_id", "state"), ("i8", "i8", "f8"), "Artifact",
            scope.artifacts("id"), order="id", split_on="id", split_table="Artifact", by_key=scope.listed),
        "artifact_properties": ColumnQuery(
            ("artifact_id", code, "CASE WHEN is_custom_property THEN 1 ELSE 0 END", value), ("i8", "i1", "i1", "f8"),
            "ArtifactProperty",
            (f"name IN ({', '.join(repr(n) for n in ARTIFACT_PROPERTIES)})", *scope.artifacts("artifact_id")),
            split_on="artifact_id", split_table="Artifact", by_key=scope.listed),
        "runs": ColumnQuery(
            ("a.execution_id", "a.context_id"), ("i8", "i8"), "Association a",
            (f"a.context_id IN ({run_contexts_sql})", *scope.memberships("a.execution_id")),
            split_on="a.id", split_table="Association"),
        "pipelines": ColumnQuery(
            ("a.execution_id", "a.context_id"), ("i8", "i8"), "Association a",
            (f"a.context_id IN ({ints(pipeline_ids)})", *scope.memberships("a.execution_id")),
            split_on="a.id", split_table="Association"),
        "references": ColumnQuery(
            ("e.artifact_id", "e.execution_id"), ("i8", "i8"), "Event e JOIN EventPath p ON p.event_id = e.id",
            (f"p.step_key IN ({reference_keys})", f"e.type IN ({ints(sorted(rules.INPUT_EVENT_TYPES))})",
             *scope.executions("e.execution_id"))),
    }


def row_queries(scope: Scope, run_contexts_sql: str, trainer_types: list[int]) -> dict[str, RowQuery]:
    """The string queries: run names, and the code and structure hashes of trainers."""
    trainer_scope = "".join(f" AND {c}" for c in scope.executions("e.id"))
    # Listed ids are looked up by key; without the unary plus SQLite walks every trainer by type.
    type_column = "+e.type_id" if scope.execution_ids is not None else "e.type_id"
    return {
        "run_names": RowQuery(f"SELECT id, name FROM Context WHERE id IN ({run_contexts_sql})"),
        "run_logical_times": RowQuery(
            "SELECT context_id, COALESCE(double_value, int_value) FROM ContextProperty "
            f"WHERE name = '{schema.ContextProps.LOGICAL_DATE_EPOCH_SECONDS}' AND context_id IN ({run_contexts_sql})"
        ),
        "trainer_properties": RowQuery(
            # The trainers first, then their properties by key: PostgreSQL otherwise starts from
            # every execution's hash properties when a window of runs asks for a few.
            "SELECT p.execution_id, p.name, p.string_value FROM ExecutionProperty p "
            f"WHERE p.execution_id IN (SELECT e.id FROM Execution e WHERE {type_column} IN ({ints(trainer_types)})"
            f"{trainer_scope}) AND p.name IN ({', '.join(repr(n) for n in TRAINER_PROPERTIES)}) "
            "ORDER BY p.is_custom_property DESC"  # custom first: typed values overwrite them
        ),
    }
