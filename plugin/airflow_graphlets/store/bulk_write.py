"""Append rows straight into MLMD's tables: how large histories are written in minutes.

MLMD's API writes an execution in several round trips and statements per property; a paper-scale
history (millions of executions) would take hours that way. This writer inserts rows with ids
its callers allocate, in large transactions (SQLite ``executemany``, or ``INSERT ... SELECT``
from files that :func:`stage_rows` wrote in other processes; PostgreSQL ``COPY``; MySQL
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

from airflow_graphlets.errors import StoreConfigError
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
# Which table's ids each id column holds: a staged batch numbers them from 1 (copy_staged).
ID_COLUMNS: dict[str, dict[str, str]] = {
    "Context": {"id": "Context"},
    "ParentContext": {"context_id": "Context", "parent_context_id": "Context"},
    "ContextProperty": {"context_id": "Context"},
    "Execution": {"id": "Execution"},
    "ExecutionProperty": {"execution_id": "Execution"},
    "Artifact": {"id": "Artifact"},
    "ArtifactProperty": {"artifact_id": "Artifact"},
    "Event": {"id": "Event", "artifact_id": "Artifact", "execution_id": "Execution"},
    "EventPath": {"event_id": "Event"},
    "Association": {"id": "Association", "context_id": "Context", "execution_id": "Execution"},
    "Attribution": {"id": "Attribution", "context_id": "Context", "artifact_id": "Artifact"},
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


@dataclass(frozen=True)
class WideProperties:
    """Rows of a property table, one owner per row: the owner's id, then its value of each of
    ``names`` (``None``: not set). For :func:`stage_rows`, where binding one wide row costs a
    fraction of binding a row per property; copied in as MLMD's rows, one per value set."""

    names: tuple[str, ...]
    rows: list[tuple]
    is_custom_property: int = 1


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
        self.engine = sa.create_engine(config.sqlalchemy_url(), connect_args=config.connect_args())
        self.conn = self.engine.raw_connection()
        self.dialect = self.engine.dialect.name
        self._pending: dict[str, list[tuple]] = {table: [] for table in COLUMNS}
        self._encoded: dict[str, list[str]] = {table: [] for table in COLUMNS}  # PostgreSQL: COPY text
        self._copier: ThreadPoolExecutor | None = None  # PostgreSQL: sends COPY data while we prepare more
        self._in_flight: Future | None = None
        if self.dialect == "sqlite":
            # No wait for the disk at each commit. (Tried and dropped: a 2 GB page cache,
            # in-memory temporary data and a sorter thread; with property rows grouped by name
            # too, a paper-scale load took 653 s against 563 s.)
            self.conn.execute("PRAGMA synchronous=OFF")
        elif self.dialect == "postgresql":
            self._set_bulk_session(self.conn)
        if defer_indexes and self._holds_executions():
            # Checked before anything is dropped: a live store must never lose its keys (issue 22).
            self.close()
            raise StoreConfigError(f"The store {config} already holds executions; simulate into a new or empty "
                                   "store (a bulk load drops and rebuilds the indexes, which a store in use must "
                                   "not go without).")
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
            self.close()

    def close(self) -> None:
        """Close every connection the writer holds. None may outlive it: a process that forks
        readers next (the bulk reader) must not hand them an open SQLite connection to the file."""
        self.conn.close()
        self.engine.dispose()
        self.mlmd.close()

    def _holds_executions(self) -> bool:
        cursor = self.conn.cursor()
        cursor.execute("SELECT EXISTS (SELECT 1 FROM Execution)")
        found = bool(cursor.fetchone()[0])
        cursor.close()
        self.conn.rollback()  # end the read; the load's transaction begins later
        return found

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

    def copy_staged(self, path: str) -> None:
        """SQLite: copy in the rows of a file :func:`stage_rows` wrote, and commit them (the file
        is left in place).

        The staged rows number each table's ids from 1 (ids only they refer to, as a batch of
        whole pipelines does); they are shifted to follow the store's largest ids (every id
        column, by :data:`ID_COLUMNS`), so that batches can be staged side by side without
        knowing each other's sizes. Rows queued with :meth:`add` are committed first."""
        if self.dialect != "sqlite":
            raise TypeError(f"staged files are SQLite databases for a SQLite store; a {self.dialect} store takes "
                            "tuples or encoded rows")
        self.flush()
        first = self.next_ids()
        cursor = self.conn.cursor()
        cursor.execute("ATTACH DATABASE ? AS staged", (path,))  # outside any transaction, as SQLite requires
        try:
            cursor.execute("SELECT name FROM staged.sqlite_master WHERE type = 'table'")
            held = {row[0] for row in cursor.fetchall()}
            for table, columns in COLUMNS.items():
                shifted = ", ".join(f"{column} + {first[ID_COLUMNS[table][column]] - 1}"
                                    if column in ID_COLUMNS[table] else column for column in columns)
                if table in held:
                    cursor.execute(f"INSERT INTO main.{table} ({', '.join(columns)}) "
                                   f"SELECT {shifted} FROM staged.{table} ORDER BY rowid")
                elif _wide_table(table) in held:
                    cursor.execute(self._unpivot(cursor, table, shifted))
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        finally:
            cursor.execute("DETACH DATABASE staged")
            cursor.close()

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

    @staticmethod
    def _unpivot(cursor, table: str, shifted: str) -> str:
        """The statement that copies a staged wide property table in as MLMD's rows: each owner
        (outer loop, CROSS JOIN keeps it so) with each name set, in name order, each value in
        the column of its SQLite type."""
        wide, names = _wide_table(table), _wide_names_table(table)
        cursor.execute(f"SELECT COUNT(*) FROM staged.{names}")
        slots = " ".join(f"WHEN {n} THEN w.v{n}" for n in range(cursor.fetchone()[0]))
        owner = COLUMNS[table][0]
        return (f"INSERT INTO main.{table} ({', '.join(COLUMNS[table])}) SELECT {shifted} FROM ("
                f"SELECT {owner}, name, is_custom_property, CASE typeof(value) WHEN 'integer' THEN value END AS int_value, "
                "CASE typeof(value) WHEN 'real' THEN value END AS double_value, "
                "CASE typeof(value) WHEN 'text' THEN value END AS string_value FROM ("
                f"SELECT w.{owner}, n.name, n.is_custom_property, CASE n.slot {slots} END AS value "
                f"FROM staged.{wide} AS w CROSS JOIN staged.{names} AS n) WHERE value IS NOT NULL)")

    def _insert(self, cursor, table: str, columns: Sequence[str], rows: list[tuple] | io.StringIO) -> None:
        if self.dialect == "postgresql":
            names = ", ".join(columns)
            freeze = ", FREEZE true" if table in self._frozen else ""
            # flush() hands PostgreSQL its rows as COPY text
            cursor.copy_expert(f"COPY {table} ({names}) FROM STDIN WITH (FORMAT csv{freeze}, FORCE_NULL ({names}))", rows)
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


def stage_rows(rows: dict[str, list[tuple] | WideProperties], path: str) -> None:
    """Write rows by table (tuples in :data:`COLUMNS` order, ids numbered from 1 in each table)
    into a new SQLite file at ``path``, for :meth:`BulkWriter.copy_staged`.

    Plain tables, no keys but the rowid, no journal: Python's per-row cost of ``executemany`` is
    paid here, in whichever process calls this (``graphlets simulate``'s producers, several side
    by side), and the process writing the store copies the rows with SQLite's own
    ``INSERT ... SELECT``, about a quarter of the cost per row of inserting them from Python."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("BEGIN")
        for table, table_rows in rows.items():
            if isinstance(table_rows, WideProperties):
                _stage_wide(conn, table, table_rows)
                continue
            columns = COLUMNS[table]
            # An id column is the rowid: the copy reads rows in id order.
            declared = ", ".join(f"{c} INTEGER PRIMARY KEY" if c == "id" else c for c in columns)
            conn.execute(f"CREATE TABLE {table} ({declared})")
            conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(columns))})", table_rows)
        conn.execute("COMMIT")
    finally:
        conn.close()


def _stage_wide(conn: sqlite3.Connection, table: str, wide: WideProperties) -> None:
    """A property table as two staged tables: the names (by slot) and one row per owner; value
    columns without a declared type keep each value's own SQLite type, which picks its column."""
    names = _wide_names_table(table)
    conn.execute(f"CREATE TABLE {names} (slot INTEGER PRIMARY KEY, name, is_custom_property)")
    conn.executemany(f"INSERT INTO {names} VALUES (?, ?, ?)",
                     [(slot, name, wide.is_custom_property) for slot, name in enumerate(wide.names)])
    values = [f"v{n}" for n in range(len(wide.names))]
    conn.execute(f"CREATE TABLE {_wide_table(table)} ({COLUMNS[table][0]}, {', '.join(values)})")
    conn.executemany(f"INSERT INTO {_wide_table(table)} VALUES ({', '.join('?' * (len(values) + 1))})", wide.rows)


def _wide_table(table: str) -> str:
    return f"{table}_wide"


def _wide_names_table(table: str) -> str:
    return f"{table}_wide_names"


def encode_copy_text(rows: list[tuple]) -> str:
    """Rows as CSV for PostgreSQL's COPY (what :meth:`BulkWriter.add` takes as text), written by
    the csv module's C writer (no Python loop per field). ``None`` is written as an empty field,
    read back as NULL through ``FORCE_NULL``, so an empty string is stored as NULL too: MLMD has
    no use for empty names, URIs or keys. PostgreSQL reads 1/0 as booleans."""
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n").writerows(rows)
    return buffer.getvalue()
