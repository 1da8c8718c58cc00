"""Append rows straight into MLMD's tables: how large histories are written in minutes.

MLMD's API writes an execution in several round trips and statements per property; a paper-scale
history (millions of executions) would take hours that way. This writer inserts rows with ids
it allocates itself, in large transactions (SQLite ``executemany``, PostgreSQL ``COPY``, MySQL
multi-row ``INSERT``), then moves PostgreSQL's id sequences past them so MLMD's own later writes
never collide. Types are still registered through MLMD's API, and the schema is MLMD's, so the
store passes MLMD's checks and reads back through its API exactly.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

import sqlalchemy as sa

from airflow_graphlets.store.connect import open_store
from airflow_graphlets.store.types import TypeRegistry
from airflow_graphlets.store.uri import StoreConfig

_PROPERTY_COLUMNS = ("name", "is_custom_property", "int_value", "double_value", "string_value")
COLUMNS: dict[str, tuple[str, ...]] = {
    "Context": ("id", "type_id", "name", "external_id", "create_time_since_epoch", "last_update_time_since_epoch"),
    "ParentContext": ("context_id", "parent_context_id"),
    "ContextProperty": ("context_id", *_PROPERTY_COLUMNS),
    "Execution": ("id", "type_id", "last_known_state", "name", "external_id", "create_time_since_epoch",
                  "last_update_time_since_epoch"),
    "ExecutionProperty": ("execution_id", *_PROPERTY_COLUMNS),
    "Artifact": ("id", "type_id", "uri", "state", "name", "external_id", "create_time_since_epoch",
                 "last_update_time_since_epoch"),
    "ArtifactProperty": ("artifact_id", *_PROPERTY_COLUMNS),
    "Event": ("id", "artifact_id", "execution_id", "type", "milliseconds_since_epoch"),
    "EventPath": ("event_id", "is_index_step", "step_index", "step_key"),
    "Association": ("id", "context_id", "execution_id"),
    "Attribution": ("id", "context_id", "artifact_id"),
}
# Tables whose ids we allocate, and so whose PostgreSQL sequences must move past them.
ID_TABLES = ("Context", "Execution", "Artifact", "Event", "Association", "Attribution")


class BulkWriter:
    """Writes rows into one MLMD store. Use as a context manager; rows commit per :meth:`flush`."""

    def __init__(self, config: StoreConfig, defer_indexes: bool = False) -> None:
        """Open the store (creating MLMD's schema if new).

        Args:
          config: the store.
          defer_indexes: drop the secondary (non-unique) indexes of the bulk tables now and
            build them again on exit, each in one pass, which is much faster than updating them
            row by row. Only for a store nothing else uses meanwhile.
        """
        self.config = config
        self.mlmd = open_store(config)  # creates MLMD's schema (and its version row) when new
        self.types = TypeRegistry(self.mlmd)
        self.engine = sa.create_engine(config.sqlalchemy_url())
        self.conn = self.engine.raw_connection()
        self.dialect = self.engine.dialect.name
        self._pending: dict[str, list[tuple]] = {table: [] for table in COLUMNS}
        if self.dialect == "sqlite":
            self.conn.execute("PRAGMA synchronous=OFF")
        self._deferred: list[str] = self._drop_secondary_indexes() if defer_indexes else []

    def __enter__(self) -> BulkWriter:
        return self

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None:
                self.flush()
        finally:
            self._rebuild_indexes()  # whatever happened, the store keeps MLMD's indexes
            self._advance_sequences()
            self.conn.close()
            self.engine.dispose()

    def _drop_secondary_indexes(self) -> list[str]:
        """Drop the non-unique indexes of the tables we fill; returns the statements that rebuild them."""
        tables = list(COLUMNS)
        cursor = self.conn.cursor()
        if self.dialect == "sqlite":
            names = ", ".join(f"'{t}'" for t in tables)
            cursor.execute(f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                           f"AND sql NOT LIKE 'CREATE UNIQUE%' AND tbl_name IN ({names})")
        elif self.dialect == "postgresql":
            names = ", ".join(f"'{t.lower()}'" for t in tables)
            cursor.execute("SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
                           f"JOIN pg_class t ON t.oid = x.indrelid WHERE t.relname IN ({names}) "
                           "AND NOT x.indisprimary AND NOT x.indisunique AND pg_table_is_visible(t.oid)")
        else:
            cursor.close()
            return []  # MySQL: indexes are part of the table definitions; leave them
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX {name}")
        self.conn.commit()
        cursor.close()
        return [definition for _, definition in indexes]

    def _rebuild_indexes(self) -> None:
        if not self._deferred:
            return
        cursor = self.conn.cursor()
        for statement in self._deferred:
            cursor.execute(statement)
        self.conn.commit()
        cursor.close()
        self._deferred = []

    def next_ids(self) -> dict[str, int]:
        """The first free id of each table whose ids callers allocate."""
        cursor = self.conn.cursor()
        ids = {}
        for table in ID_TABLES:
            cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}")
            ids[table] = int(cursor.fetchone()[0]) + 1
        cursor.close()
        return ids

    def add(self, table: str, rows: Iterable[tuple]) -> None:
        """Queue rows (tuples in :data:`COLUMNS` order) for ``table``."""
        self._pending[table].extend(rows)

    def flush(self) -> None:
        """Insert everything queued, in one transaction, parents before children."""
        cursor = self.conn.cursor()
        try:
            for table, rows in self._pending.items():
                if rows:
                    self._insert(cursor, table, COLUMNS[table], rows)
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        finally:
            cursor.close()
        self._pending = {table: [] for table in COLUMNS}

    def _insert(self, cursor, table: str, columns: Sequence[str], rows: list[tuple]) -> None:
        if self.dialect == "postgresql":
            names = ", ".join(columns)
            cursor.copy_expert(f"COPY {table} ({names}) FROM STDIN WITH (FORMAT csv, FORCE_NULL ({names}))", _copy_csv(rows))
            return
        marks = ", ".join(["?" if self.dialect == "sqlite" else "%s"] * len(columns))
        cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    def _advance_sequences(self) -> None:
        if self.dialect != "postgresql":
            return  # SQLite's AUTOINCREMENT and MySQL's AUTO_INCREMENT follow explicit ids
        cursor = self.conn.cursor()
        for table in ID_TABLES:
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table.lower()}', 'id'), "
                f"GREATEST((SELECT COALESCE(MAX(id), 0) FROM {table}), 1))"
            )
        self.conn.commit()
        # Fresh statistics, so the planner knows the tables just grew by millions of rows.
        self.conn.autocommit = True
        cursor.execute("ANALYZE")
        cursor.close()


def _copy_csv(rows: list[tuple]) -> io.StringIO:
    """Rows as CSV for PostgreSQL's COPY, written by the csv module's C writer (no Python loop
    per field). ``None`` is written as an empty field, read back as NULL through ``FORCE_NULL``,
    so an empty string is stored as NULL too: MLMD has no use for empty names, URIs or keys.
    PostgreSQL reads 1/0 as booleans."""
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n").writerows(rows)
    buffer.seek(0)
    return buffer
