"""MLMD's schema (version 10), created without the ml-metadata client.

The tables, columns, keys and indexes are those ml-metadata 1.17.1 creates (facts read from its
``ml_metadata/util/metadata_source_query_config.cc``), described once here and rendered per
database. ``tests/test_mlmd_ddl.py`` compares a store created here with one ml-metadata created,
table by table, column by column and index by index.

On SQLite and PostgreSQL the schema is made in one transaction; MySQL commits each DDL statement
by itself, so there a half-made schema is possible if the process dies meanwhile (callers create
it under ``store/bootstrap.py``'s lock, as for ml-metadata's own creation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from airflow_graphlets.errors import StoreUnavailableError

SCHEMA_VERSION = 10


@dataclass(frozen=True)
class Column:
    """One column: its name, its declared type, and its constraints as MLMD declares them."""

    name: str
    type: str  # INT, INTEGER, VARCHAR(255), TINYINT(1), TEXT, DOUBLE, BLOB, BOOLEAN
    not_null: bool = False
    default: str | None = None
    unique: bool = False
    auto_id: bool = False  # the table's own id: INTEGER PRIMARY KEY AUTOINCREMENT


@dataclass(frozen=True)
class Table:
    """One table: columns in order, then a composite primary key or unique key, if any."""

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    unique: tuple[str, ...] = ()
    unique_name: str | None = None  # PostgreSQL and MySQL name some of MLMD's unique keys


@dataclass(frozen=True)
class Index:
    """A secondary index; ``where_not_null`` makes it partial (rows whose column is not NULL)."""

    name: str
    table: str
    columns: tuple[str, ...]
    where_not_null: str | None = None


def _id() -> Column:
    return Column("id", "INTEGER", auto_id=True)


def _times() -> tuple[Column, Column]:
    return (Column("create_time_since_epoch", "INT", not_null=True, default="0"),
            Column("last_update_time_since_epoch", "INT", not_null=True, default="0"))


def _properties(owner: str) -> Table:
    return Table(f"{owner}Property", (
        Column(f"{owner.lower()}_id", "INT", not_null=True),
        Column("name", "VARCHAR(255)", not_null=True),
        Column("is_custom_property", "TINYINT(1)", not_null=True),
        Column("int_value", "INT"),
        Column("double_value", "DOUBLE"),
        Column("string_value", "TEXT"),
        Column("byte_value", "BLOB"),
        Column("proto_value", "BLOB"),
        Column("bool_value", "BOOLEAN"),
    ), primary_key=(f"{owner.lower()}_id", "name", "is_custom_property"))


EXTERNAL_ID = Column("external_id", "VARCHAR(255)", unique=True)

# In the order ml-metadata creates them.
TABLES: tuple[Table, ...] = (
    Table("Type", (_id(), Column("name", "VARCHAR(255)", not_null=True), Column("version", "VARCHAR(255)"),
                   Column("type_kind", "TINYINT(1)", not_null=True), Column("description", "TEXT"),
                   Column("input_type", "TEXT"), Column("output_type", "TEXT"), EXTERNAL_ID)),
    Table("ParentType", (Column("type_id", "INT", not_null=True), Column("parent_type_id", "INT", not_null=True)),
          primary_key=("type_id", "parent_type_id")),
    Table("TypeProperty", (Column("type_id", "INT", not_null=True), Column("name", "VARCHAR(255)", not_null=True),
                           Column("data_type", "INT")), primary_key=("type_id", "name")),
    Table("Artifact", (_id(), Column("type_id", "INT", not_null=True), Column("uri", "TEXT"), Column("state", "INT"),
                       Column("name", "VARCHAR(255)"), EXTERNAL_ID, *_times()), unique=("type_id", "name"),
          unique_name="UniqueArtifactTypeName"),
    _properties("Artifact"),
    Table("Execution", (_id(), Column("type_id", "INT", not_null=True), Column("last_known_state", "INT"),
                        Column("name", "VARCHAR(255)"), EXTERNAL_ID, *_times()), unique=("type_id", "name"),
          unique_name="UniqueExecutionTypeName"),
    _properties("Execution"),
    Table("Context", (_id(), Column("type_id", "INT", not_null=True), Column("name", "VARCHAR(255)", not_null=True),
                      EXTERNAL_ID, *_times()), unique=("type_id", "name")),
    _properties("Context"),
    Table("ParentContext", (Column("context_id", "INT", not_null=True),
                            Column("parent_context_id", "INT", not_null=True)),
          primary_key=("context_id", "parent_context_id")),
    Table("Event", (_id(), Column("artifact_id", "INT", not_null=True), Column("execution_id", "INT", not_null=True),
                    Column("type", "INT", not_null=True), Column("milliseconds_since_epoch", "INT")),
          unique=("artifact_id", "execution_id", "type"), unique_name="UniqueEvent"),
    Table("EventPath", (Column("event_id", "INT", not_null=True), Column("is_index_step", "TINYINT(1)", not_null=True),
                        Column("step_index", "INT"), Column("step_key", "TEXT"))),
    Table("Association", (_id(), Column("context_id", "INT", not_null=True),
                          Column("execution_id", "INT", not_null=True)), unique=("context_id", "execution_id")),
    Table("Attribution", (_id(), Column("context_id", "INT", not_null=True),
                          Column("artifact_id", "INT", not_null=True)), unique=("context_id", "artifact_id")),
    Table("MLMDEnv", (Column("schema_version", "INTEGER"),), primary_key=("schema_version",)),
)


def _secondary_indexes() -> tuple[Index, ...]:
    indexes = [Index("idx_artifact_uri", "Artifact", ("uri",))]
    indexes += [Index(f"idx_artifact_{c}", "Artifact", (c,)) for c in ("create_time_since_epoch",
                                                                       "last_update_time_since_epoch")]
    indexes += [Index("idx_event_execution_id", "Event", ("execution_id",)),
                Index("idx_parentcontext_parent_context_id", "ParentContext", ("parent_context_id",)),
                Index("idx_type_name", "Type", ("name",))]
    for owner in ("execution", "context"):
        indexes += [Index(f"idx_{owner}_{c}", owner.capitalize(), (c,)) for c in ("create_time_since_epoch",
                                                                                  "last_update_time_since_epoch")]
    indexes.append(Index("idx_eventpath_event_id", "EventPath", ("event_id",)))
    for owner in ("artifact", "execution", "context"):
        for kind in ("int", "double", "string"):
            value = f"{kind}_value"
            indexes.append(Index(f"idx_{owner}_property_{kind}", f"{owner.capitalize()}Property",
                                 ("name", "is_custom_property", value), where_not_null=value))
    indexes += [Index(f"idx_{owner}_external_id", owner.capitalize(), ("external_id",))
                for owner in ("type", "artifact", "execution", "context")]
    return tuple(indexes)


INDEXES: tuple[Index, ...] = _secondary_indexes()


def _create_tables(quote: str, auto_id: Callable[[Table], str], column_type: Callable[[Table, Column], str],
                   named_unique: bool) -> list[str]:
    """``CREATE TABLE`` of every table, as one database spells it: how names are quoted, how an
    auto-incremented id and each column's type are declared, whether unique keys keep MLMD's names."""
    statements = []
    for table in TABLES:
        parts = []
        for c in table.columns:
            if c.auto_id:
                parts.append(f"{quote}{c.name}{quote} {auto_id(table)}")
                continue
            declared = f"{quote}{c.name}{quote} {column_type(table, c)}"
            if table.primary_key == (c.name,):
                declared += " PRIMARY KEY"
            if c.not_null:
                declared += " NOT NULL"
            if c.default is not None:
                declared += f" DEFAULT {c.default}"
            if c.unique:
                declared += " UNIQUE"
            parts.append(declared)
        if table.unique:
            named = f"CONSTRAINT {table.unique_name} " if named_unique and table.unique_name else ""
            parts.append(f"{named}UNIQUE({', '.join(f'{quote}{c}{quote}' for c in table.unique)})")
        if len(table.primary_key) > 1:
            parts.append(f"PRIMARY KEY ({', '.join(f'{quote}{c}{quote}' for c in table.primary_key)})")
        statements.append(f"CREATE TABLE IF NOT EXISTS {quote}{table.name}{quote} ({', '.join(parts)})")
    return statements


def sqlite_statements() -> list[str]:
    """The statements that create MLMD's schema on SQLite, in order (without the version row)."""
    statements = _create_tables("`", lambda _: "INTEGER PRIMARY KEY AUTOINCREMENT", lambda _, c: c.type,
                                named_unique=False)
    for index in INDEXES:
        where = f" WHERE `{index.where_not_null}` IS NOT NULL" if index.where_not_null else ""
        statements.append(f"CREATE INDEX IF NOT EXISTS `{index.name}` ON `{index.table}`"
                          f"({', '.join(f'`{c}`' for c in index.columns)}){where}")
    return statements


# SQLite's declared types that PostgreSQL spells otherwise; MLMD's flags are BOOLEAN there, its
# type kind SMALLINT, and its times BIGINT.
_POSTGRES_TYPES = {"DOUBLE": "DOUBLE PRECISION", "BLOB": "BYTEA", "INTEGER": "INT"}
_POSTGRES_BOOLEANS = frozenset({"is_custom_property", "is_index_step"})
_BIGINTS = frozenset({"create_time_since_epoch", "last_update_time_since_epoch", "milliseconds_since_epoch"})


def _postgres_type(_: Table, column: Column) -> str:
    if column.name in _POSTGRES_BOOLEANS:
        return "BOOLEAN"
    if column.name == "type_kind":
        return "SMALLINT"
    if column.name in _BIGINTS:
        return "BIGINT"
    return _POSTGRES_TYPES.get(column.type, column.type)


def postgres_statements() -> list[str]:
    """The statements that create MLMD's schema on PostgreSQL, in order (without the version row)."""
    statements = _create_tables("", lambda _: "SERIAL PRIMARY KEY", _postgres_type, named_unique=True)
    for index in INDEXES:  # PostgreSQL's are not partial in MLMD
        statements.append(f"CREATE INDEX IF NOT EXISTS {index.name} ON {index.table} ({', '.join(index.columns)})")
    return statements


# MySQL: MLMD's property values are MEDIUMTEXT/MEDIUMBLOB, its times BIGINT, and a TEXT column is
# indexed on its first 255 characters.
_MYSQL_PROPERTY_TYPES = {"string_value": "MEDIUMTEXT", "byte_value": "MEDIUMBLOB", "proto_value": "MEDIUMBLOB"}
_MYSQL_TEXT_INDEXED = frozenset({"uri", "string_value"})


def _mysql_type(table: Table, column: Column) -> str:
    if table.name.endswith("Property") and column.name in _MYSQL_PROPERTY_TYPES:
        return _MYSQL_PROPERTY_TYPES[column.name]
    if column.name in _BIGINTS:
        return "BIGINT"
    return column.type


def mysql_statements() -> list[str]:
    """The statements that create MLMD's schema on MySQL or MariaDB, in order (without the version row)."""
    statements = _create_tables(
        "`", lambda table: f"{'INT' if table.name == 'Type' else 'INTEGER'} PRIMARY KEY AUTO_INCREMENT", _mysql_type,
        named_unique=True)
    for index in INDEXES:
        columns = ", ".join(f"`{c}`(255)" if c in _MYSQL_TEXT_INDEXED else f"`{c}`" for c in index.columns)
        statements.append(f"ALTER TABLE `{index.table}` ADD INDEX `{index.name}` ({columns})")
    return statements


def schema_version(conn: sa.Connection) -> int | None:
    """The store's MLMD schema version; None when it has no ``MLMDEnv`` table (a new database)."""
    # PostgreSQL folds MLMD's unquoted names to lower case; SQLite and MySQL keep them.
    if "mlmdenv" not in {name.lower() for name in sa.inspect(conn).get_table_names()}:
        return None
    versions = [int(v) for (v,) in conn.execute(sa.text("SELECT schema_version FROM MLMDEnv"))]
    if len(versions) != 1:
        raise StoreUnavailableError(f"The MLMD store's MLMDEnv table holds {len(versions)} schema versions; "
                                    "a store holds exactly one. Point the connection at an MLMD store.")
    return versions[0]


def create_schema(conn: sa.Connection) -> bool:
    """Create MLMD's schema in the database ``conn`` is on (SQLite, PostgreSQL, MySQL or MariaDB)
    unless it holds it already; returns whether it created it.

    Raises:
      StoreUnavailableError: the database holds another MLMD schema version (the message says which).
      ValueError: a database this module does not create the schema on yet.
    """
    render = {"sqlite": sqlite_statements, "postgresql": postgres_statements,
              "mysql": mysql_statements, "mariadb": mysql_statements}.get(conn.dialect.name)
    if render is None:
        raise ValueError(f"MLMD's schema is created natively on SQLite, PostgreSQL and MySQL, not {conn.dialect.name}")
    with conn.begin():
        found = schema_version(conn)
        if found == SCHEMA_VERSION:
            return False
        if found is not None:
            raise StoreUnavailableError(
                f"The MLMD store has schema version {found}; airflow-graphlets reads and writes version "
                f"{SCHEMA_VERSION} (ml-metadata 1.17). Migrate it with ml-metadata's MetadataStore("
                "enable_upgrade_migration=True), or point the connection at another store.")
        for statement in render():
            conn.execute(sa.text(statement))
        conn.execute(sa.text("INSERT INTO MLMDEnv(schema_version) VALUES (:v)"), {"v": SCHEMA_VERSION})
    return True
