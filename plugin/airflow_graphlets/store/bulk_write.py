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
import sqlite3
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

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
# PostgreSQL index builds after a bulk load: sessions side by side, and the memory each sorts in
# (3 GB: the 54 M-row property table's indexes sort in memory at paper scale, 918 -> 800 s on a
# 2-core machine; smaller loads never use it all. The server must have it free, twice over.)
_INDEX_BUILDERS = 2
_INDEX_BUILD_MEMORY = "3GB"
# Tables whose ids we allocate, and so whose PostgreSQL sequences must move past them.
ID_TABLES = ("Context", "Execution", "Artifact", "Event", "Association", "Attribution")


@dataclass(frozen=True)
class _Deferred:
    """An index dropped for the load: the statement that builds it again and, for the index of a
    key, the one that makes it the constraint again."""

    table: str  # lower case, as PostgreSQL's catalog names it
    build: str
    attach: str | None = None


class BulkWriter:
    """Writes rows into one MLMD store. Use as a context manager; rows commit per :meth:`flush`."""

    def __init__(self, config: StoreConfig, defer_indexes: bool = False, single_transaction: bool = False) -> None:
        """Open the store (creating MLMD's schema if new).

        Args:
          config: the store.
          defer_indexes: drop the secondary (non-unique) indexes of the bulk tables now, and on
            PostgreSQL their primary keys and unique constraints too, and build them again on
            exit, each in one pass, which is much faster than updating them row by row. Only for
            a store nothing else uses meanwhile.
          single_transaction: PostgreSQL, bulk tables still empty: write everything in one
            transaction that begins by truncating them, so COPY can write rows already frozen
            (``FREEZE``). Without it, the first scan after the load (building the indexes) sets
            hint bits on every row and writes the whole 15 GB again. All or nothing: an error
            leaves the tables empty. Ignored elsewhere, or when a bulk table holds rows.
        """
        self.config = config
        self.mlmd = open_store(config)  # creates MLMD's schema (and its version row) when new
        self.types = TypeRegistry(self.mlmd)
        self.engine = sa.create_engine(config.sqlalchemy_url())
        self.conn = self.engine.raw_connection()
        self.dialect = self.engine.dialect.name
        self._pending: dict[str, list[tuple]] = {table: [] for table in COLUMNS}
        self._encoded: dict[str, list[str]] = {table: [] for table in COLUMNS}  # PostgreSQL: COPY text
        self._staged: list[str] = []  # SQLite: files of rows written by stage_rows()
        self._copier: ThreadPoolExecutor | None = None  # PostgreSQL: sends COPY data while we prepare more
        self._in_flight: Future | None = None
        if self.dialect == "sqlite":
            # No wait for the disk at each commit. (Tried and dropped: a 2 GB page cache,
            # in-memory temporary data and a sorter thread; with property rows grouped by name
            # too, a paper-scale load took 653 s against 563 s.)
            self.conn.execute("PRAGMA synchronous=OFF")
        elif self.dialect == "postgresql":
            self._set_bulk_session(self.conn)
        self._deferred: list[_Deferred] = self._drop_secondary_indexes() if defer_indexes else []
        self._frozen: set[str] = self._truncate_empty_tables() if single_transaction and self.dialect == "postgresql" else set()

    def __enter__(self) -> BulkWriter:
        return self

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None:
                self.flush()
                if self._frozen:
                    self.conn.commit()  # the load's one transaction
        finally:
            if self._copier is not None:
                self._copier.shutdown(wait=True)  # a batch in flight ends before the indexes are built
            if self._frozen and exc[0] is not None:
                self.conn.rollback()
            self._rebuild_indexes()  # whatever happened, the store keeps MLMD's indexes
            self._advance_sequences()
            self.conn.close()
            self.engine.dispose()

    def _truncate_empty_tables(self) -> set[str]:
        """Open the load's one transaction with a TRUNCATE of the bulk tables, if all are empty;
        returns the tables COPY may then write frozen (none when a table holds rows)."""
        cursor = self.conn.cursor()
        for table in COLUMNS:
            cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {table})")
            if cursor.fetchone()[0]:
                self.conn.rollback()
                cursor.close()
                return set()
        cursor.execute(f"TRUNCATE {', '.join(COLUMNS)}")  # no commit: COPY FREEZE needs this transaction
        cursor.close()
        return set(COLUMNS)

    def _drop_secondary_indexes(self) -> list[_Deferred]:
        """Drop the non-unique indexes of the tables we fill; returns what rebuilds them."""
        tables = list(COLUMNS)
        cursor = self.conn.cursor()
        if self.dialect == "sqlite":
            names = ", ".join(f"'{t}'" for t in tables)
            cursor.execute(f"SELECT tbl_name, name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                           f"AND sql NOT LIKE 'CREATE UNIQUE%' AND tbl_name IN ({names})")
        elif self.dialect == "postgresql":
            names = ", ".join(f"'{t.lower()}'" for t in tables)
            cursor.execute("SELECT t.relname, i.relname, pg_get_indexdef(i.oid) FROM pg_index x "
                           "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
                           f"WHERE t.relname IN ({names}) AND NOT x.indisprimary AND NOT x.indisunique "
                           "AND pg_table_is_visible(t.oid)")
        else:
            cursor.close()
            return []  # MySQL: indexes are part of the table definitions; leave them
        indexes = cursor.fetchall()
        for _, name, _ in indexes:
            cursor.execute(f"DROP INDEX {name}")
        rebuild = [_Deferred(table.lower(), definition) for table, _, definition in indexes]
        if self.dialect == "postgresql":
            rebuild += self._drop_key_constraints(cursor, names)
        self.conn.commit()
        cursor.close()
        return rebuild

    @staticmethod
    def _drop_key_constraints(cursor, names: str) -> list[_Deferred]:
        """PostgreSQL: drop the primary keys and unique constraints of the tables we fill too (ids
        are ours, so nothing can collide); returns what adds them back with MLMD's names and
        definitions. Each key's index is then built in one sort instead of row by row, as a
        plain ``CREATE UNIQUE INDEX`` (which, unlike ``ADD CONSTRAINT``, lets the table's other
        index builds run beside it), and attached as the constraint after."""
        cursor.execute("SELECT t.relname, c.conname, c.contype, i.relname, pg_get_indexdef(c.conindid) "
                       "FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_class i ON i.oid = c.conindid "
                       f"WHERE c.contype IN ('p', 'u') AND t.relname IN ({names}) AND pg_table_is_visible(t.oid)")
        constraints = cursor.fetchall()
        for table, name, *_ in constraints:
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        kinds = {"p": "PRIMARY KEY", "u": "UNIQUE"}
        return [_Deferred(table, index_definition,
                          f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {kinds[kind]} USING INDEX "{index}"')
                for table, name, kind, index, index_definition in constraints]

    @staticmethod
    def _set_bulk_session(conn) -> None:
        """PostgreSQL session settings for a bulk load: this session only, never the server's.

        Commits need not wait for the WAL flush (a crash loses at most the last batch, which a
        rerun into a new store writes again), and index builds sort in memory instead of in
        temporary files."""
        cursor = conn.cursor()
        cursor.execute("SET synchronous_commit = off")
        cursor.execute(f"SET maintenance_work_mem = '{_INDEX_BUILD_MEMORY}'")
        cursor.close()
        conn.commit()

    def _rebuild_indexes(self) -> None:
        """Build the dropped indexes and keys again; on PostgreSQL, then fresh planner statistics."""
        deferred, self._deferred = self._deferred, []
        if self.dialect != "postgresql":
            self._build_indexes([d.build for d in deferred], self.conn)
            return
        # Sessions build indexes side by side, each taking the next one (a build is one core's
        # sort), largest tables first so that no long build starts last and runs alone.
        cursor = self.conn.cursor()
        cursor.execute("SELECT relname, pg_relation_size(oid) FROM pg_class WHERE relkind = 'r'")
        sizes = dict(cursor.fetchall())
        cursor.close()
        deferred.sort(key=lambda d: -sizes.get(d.table, 0))
        self._in_sessions([d.build for d in deferred])
        self._build_indexes([d.attach for d in deferred if d.attach], self.conn)
        # Statistics, so the planner knows the tables just grew by millions of rows.
        self._in_sessions([f"ANALYZE {table}" for table in sorted(COLUMNS, key=lambda t: -sizes.get(t.lower(), 0))])

    def _in_sessions(self, statements: list[str]) -> None:
        """Run statements in :data:`_INDEX_BUILDERS` bulk sessions side by side, each committed."""
        with ThreadPoolExecutor(max_workers=_INDEX_BUILDERS) as pool:
            list(pool.map(lambda statement: self._build_indexes([statement]), statements))

    def _build_indexes(self, statements: list[str], conn=None) -> None:
        own = conn is None
        conn = conn or self.engine.raw_connection()
        try:
            if own:
                self._set_bulk_session(conn)
            cursor = conn.cursor()
            for statement in statements:
                cursor.execute(statement)
            conn.commit()
            cursor.close()
        finally:
            if own:
                conn.close()

    def next_ids(self) -> dict[str, int]:
        """The first free id of each table whose ids callers allocate."""
        cursor = self.conn.cursor()
        ids = {}
        for table in ID_TABLES:
            cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}")
            ids[table] = int(cursor.fetchone()[0]) + 1
        cursor.close()
        return ids

    def add(self, table: str, rows: Iterable[tuple] | str) -> None:
        """Queue rows for ``table``: tuples in :data:`COLUMNS` order, or what :func:`encode_rows`
        made of them for this store (so a producer process can do that work)."""
        if isinstance(rows, str):
            if self.dialect != "postgresql":
                raise TypeError(f"encoded rows are for PostgreSQL's COPY; a {self.dialect} store takes tuples")
            self._encoded[table].append(rows)
        else:
            self._pending[table].extend(rows)

    def add_staged(self, path: str) -> None:
        """SQLite: queue the rows of a file :func:`stage_rows` wrote (the file is left in place)."""
        if self.dialect != "sqlite":
            raise TypeError(f"staged files are SQLite databases for a SQLite store; a {self.dialect} store takes "
                            "tuples or encoded rows")
        self._staged.append(path)

    def flush(self, wait: bool = True) -> None:
        """Insert everything queued, in one transaction, parents before children.

        Args:
          wait: return once the rows are committed. With ``False`` on PostgreSQL, the rows are
            turned into COPY data here and a copier thread sends them while the caller goes on
            preparing the next batch (PostgreSQL's work and ours overlap); a failure is raised
            by the next :meth:`flush` or on exit. Other backends always wait.
        """
        pending, self._pending = self._pending, {table: [] for table in COLUMNS}
        batch = [(table, COLUMNS[table], rows) for table, rows in pending.items() if rows]
        if self.dialect == "sqlite" and self._staged:
            staged, self._staged = self._staged, []
            self._commit_staged(batch, staged)
            return
        if self.dialect != "postgresql":
            self._commit_batch(batch)
            return
        encoded, self._encoded = self._encoded, {table: [] for table in COLUMNS}
        copies = []
        for table, columns in COLUMNS.items():
            text = "".join(encoded[table]) + (encode_rows(self.dialect, pending[table]) if pending[table] else "")
            if text:
                copies.append((table, columns, io.StringIO(text)))
        self._wait_for_copier()
        if self._copier is None:
            self._copier = ThreadPoolExecutor(max_workers=1)
        self._in_flight = self._copier.submit(self._commit_batch, copies)
        if wait:
            self._wait_for_copier()

    def _wait_for_copier(self) -> None:
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            in_flight.result()

    def _commit_batch(self, batch: list[tuple]) -> None:
        cursor = self.conn.cursor()
        try:
            for table, columns, rows in batch:
                self._insert(cursor, table, columns, rows)
            if not self._frozen:
                self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        finally:
            cursor.close()

    def _commit_staged(self, batch: list[tuple], staged: list[str]) -> None:
        """SQLite: insert ``batch`` and copy in the staged files' rows, in one transaction."""
        cursor = self.conn.cursor()
        schemas = [f"staged{n}" for n in range(len(staged))]
        for path, name in zip(staged, schemas):
            cursor.execute(f"ATTACH DATABASE ? AS {name}", (path,))  # not allowed inside a transaction
        try:
            for table, columns, rows in batch:
                self._insert(cursor, table, columns, rows)
            for name in schemas:
                cursor.execute(f"SELECT name FROM {name}.sqlite_master WHERE type = 'table'")
                held = {row[0] for row in cursor.fetchall()}
                for table, columns in COLUMNS.items():
                    if table in held:
                        names = ", ".join(columns)
                        cursor.execute(f"INSERT INTO main.{table} ({names}) SELECT {names} FROM {name}.{table}")
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        finally:
            for name in schemas:
                cursor.execute(f"DETACH DATABASE {name}")
            cursor.close()

    def _insert(self, cursor, table: str, columns: Sequence[str], rows: list[tuple] | io.StringIO) -> None:
        if self.dialect == "postgresql":
            names = ", ".join(columns)
            data = rows  # flush() hands PostgreSQL its rows as COPY text
            freeze = ", FREEZE true" if table in self._frozen else ""
            cursor.copy_expert(f"COPY {table} ({names}) FROM STDIN WITH (FORMAT csv{freeze}, FORCE_NULL ({names}))", data)
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
        cursor.close()


def encode_rows(dialect: str, rows: list[tuple]) -> list[tuple] | str:
    """Rows as the store loads them fastest: CSV text for PostgreSQL's COPY, tuples elsewhere.

    Pure and cheap to call in another process: ``graphlets simulate``'s producer encodes each
    batch itself, so the process talking to the database only passes the text on."""
    return encode_copy_text(rows) if dialect == "postgresql" else rows


def stage_rows(rows: dict[str, list[tuple]], path: str) -> None:
    """Write rows by table (tuples in :data:`COLUMNS` order) into a new SQLite file at ``path``,
    for :meth:`BulkWriter.add_staged`.

    Plain tables, no keys, no journal: Python's per-row cost of ``executemany`` is paid here, in
    whichever process calls this (``graphlets simulate``'s producer), and the process writing
    the store copies the rows with SQLite's own ``INSERT ... SELECT``, about a quarter of the
    cost per row of inserting them from Python."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("BEGIN")
        for table, table_rows in rows.items():
            columns = COLUMNS[table]
            conn.execute(f"CREATE TABLE {table} ({', '.join(columns)})")
            conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(columns))})", table_rows)
        conn.execute("COMMIT")
    finally:
        conn.close()


def encode_copy_text(rows: list[tuple]) -> str:
    """Rows as CSV for PostgreSQL's COPY (what :meth:`BulkWriter.add` takes as text), written by
    the csv module's C writer (no Python loop per field). ``None`` is written as an empty field,
    read back as NULL through ``FORCE_NULL``, so an empty string is stored as NULL too: MLMD has
    no use for empty names, URIs or keys. PostgreSQL reads 1/0 as booleans."""
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n").writerows(rows)
    return buffer.getvalue()
