"""MLMD's schema created natively (store/mlmd_ddl.py) is the schema ml-metadata creates: every
table, column, type, default, key and index, compared on SQLite and PostgreSQL with a store
ml-metadata made, and ml-metadata reads and writes the native one."""

from __future__ import annotations

import contextlib
import re
import sqlite3

import pytest
from support.databases import create_store_uri, drop_store
import sqlalchemy as sa
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from airflow_graphlets.errors import StoreUnavailableError
from airflow_graphlets.store.connect import open_store
from airflow_graphlets.store.uri import parse_store_uri
from airflow_graphlets.store.mlmd_ddl import SCHEMA_VERSION, create_schema


def sqlite_dump(path: str) -> dict:
    """Everything about an SQLite database's schema that a reader or writer depends on."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        dump = {}
        for name, sql in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name"):
            indexes = {}
            for _, index, unique, origin, partial in conn.execute(f"PRAGMA index_list(`{name}`)"):
                where = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (index,)).fetchone()
                condition = re.sub(r"[`\s]", "", where[0].split(" WHERE ", 1)[1]).lower() if partial else None
                indexes[index] = (unique, origin, condition,
                                  [tuple(row[1:]) for row in conn.execute(f"PRAGMA index_xinfo(`{index}`)")])
            dump[name] = {
                "columns": [tuple(row) for row in conn.execute(f"PRAGMA table_info(`{name}`)")],
                "indexes": indexes,
                "autoincrement": "AUTOINCREMENT" in (sql or "").upper(),
            }
        dump["MLMDEnv rows"] = conn.execute("SELECT * FROM MLMDEnv").fetchall()
        return dump


def mlmd_store(path: str) -> metadata_store.MetadataStore:
    """ml-metadata's own client on the SQLite file ``path`` (it creates the schema if missing)."""
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    return metadata_store.MetadataStore(config)


def mlmd_created(path: str) -> str:
    mlmd_store(path)
    return path


def test_a_natively_created_sqlite_store_has_the_schema_ml_metadata_creates(tmp_path):
    reference = sqlite_dump(mlmd_created(str(tmp_path / "mlmd.sqlite")))
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'native.sqlite'}")
    with engine.connect() as conn:
        assert create_schema(conn) is True
    native = sqlite_dump(str(tmp_path / "native.sqlite"))
    assert sorted(native) == sorted(reference)
    for table in reference:
        assert native[table] == reference[table], table
    assert reference["MLMDEnv rows"] == [(SCHEMA_VERSION,)]


def test_ml_metadata_reads_and_writes_a_natively_created_store(tmp_path):
    path = str(tmp_path / "native.sqlite")
    with sa.create_engine(f"sqlite:///{path}").connect() as conn:
        create_schema(conn)
        assert create_schema(conn) is False  # a store that has the schema is left as it is
    store = mlmd_store(path)
    model = metadata_store_pb2.ArtifactType(name="Model")
    model.properties["span"] = metadata_store_pb2.INT
    type_id = store.put_artifact_type(model)
    artifact = metadata_store_pb2.Artifact(type_id=type_id, uri="/m/1")
    artifact.properties["span"].int_value = 3
    [artifact_id] = store.put_artifacts([artifact])
    assert store.get_artifacts_by_id([artifact_id])[0].properties["span"].int_value == 3


def test_another_schema_version_is_refused_untouched(tmp_path):
    path = str(tmp_path / "old.sqlite")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE MLMDEnv (schema_version INTEGER PRIMARY KEY)")
        conn.execute("INSERT INTO MLMDEnv VALUES (7)")
        conn.commit()
    with sa.create_engine(f"sqlite:///{path}").connect() as conn:
        with pytest.raises(StoreUnavailableError, match="schema version 7; airflow-graphlets reads and writes version 10"):
            create_schema(conn)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert [name for (name,) in conn.execute("SELECT name FROM sqlite_master")] == ["MLMDEnv"]


POSTGRES_DUMP = {
    "columns": "SELECT table_name, ordinal_position, column_name, data_type, character_maximum_length, is_nullable, "
               "column_default FROM information_schema.columns WHERE table_schema = 'public' "
               "ORDER BY table_name, ordinal_position",
    "constraints": "SELECT t.relname, c.conname, c.contype, pg_get_constraintdef(c.oid) FROM pg_constraint c "
                   "JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
                   "WHERE n.nspname = 'public' ORDER BY t.relname, c.conname",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
               "ORDER BY tablename, indexname",
    "sequences": "SELECT sequence_name, data_type FROM information_schema.sequences "
                 "WHERE sequence_schema = 'public' ORDER BY sequence_name",
    "MLMDEnv rows": "SELECT schema_version FROM mlmdenv",
}


def catalog_dump(config, queries: dict[str, str]) -> dict:
    """What each catalog query returns on the store ``config`` names."""
    engine = sa.create_engine(config.sqlalchemy_url())
    try:
        with engine.connect() as conn:
            return {name: [tuple(row) for row in conn.execute(sa.text(sql))] for name, sql in queries.items()}
    finally:
        engine.dispose()


MYSQL_DUMP = {
    "columns": "SELECT table_name, ordinal_position, column_name, column_type, is_nullable, column_default, "
               "column_key, extra FROM information_schema.columns WHERE table_schema = DATABASE() "
               "ORDER BY table_name, ordinal_position",
    "indexes": "SELECT table_name, index_name, seq_in_index, column_name, sub_part, non_unique, index_type "
               "FROM information_schema.statistics WHERE table_schema = DATABASE() "
               "ORDER BY table_name, index_name, seq_in_index",
    "constraints": "SELECT table_name, constraint_name, constraint_type FROM information_schema.table_constraints "
                   "WHERE table_schema = DATABASE() ORDER BY table_name, constraint_name",
    "tables": "SELECT table_name, engine, table_collation FROM information_schema.tables "
              "WHERE table_schema = DATABASE() ORDER BY table_name",
    "MLMDEnv rows": "SELECT schema_version FROM MLMDEnv",
}


@pytest.mark.parametrize("backend, queries", [("postgresql", POSTGRES_DUMP), ("mysql", MYSQL_DUMP)],
                         ids=["postgresql", "mysql"])
def test_a_natively_created_server_store_has_the_schema_ml_metadata_creates(tmp_path, backend, queries):
    uris = [create_store_uri(backend, str(tmp_path)) for _ in range(2)]
    try:
        reference_config, native_config = (parse_store_uri(uri) for uri in uris)
        metadata_store.MetadataStore(reference_config.mlmd_connection_config())  # ml-metadata creates its schema
        engine = sa.create_engine(native_config.sqlalchemy_url())
        with engine.connect() as conn:
            assert create_schema(conn) is True
            assert create_schema(conn) is False
        engine.dispose()
        reference, native = catalog_dump(reference_config, queries), catalog_dump(native_config, queries)
        assert reference["MLMDEnv rows"] == [(SCHEMA_VERSION,)]
        for part in queries:
            assert native[part] == reference[part], part
        store = open_store(native_config)  # and ml-metadata uses the native one as its own
        type_id = store.put_artifact_type(metadata_store_pb2.ArtifactType(name="Model"))
        assert store.get_artifact_types()[0].id == type_id
    finally:
        for uri in uris:
            drop_store(uri)


def test_open_store_makes_a_new_store_at_version_10_and_ml_metadata_uses_it(store_uri):
    config = parse_store_uri(store_uri)
    store = open_store(config)  # a new database: the schema is made by store/mlmd_ddl.py under the lock
    engine = sa.create_engine(config.sqlalchemy_url())
    with engine.connect() as conn:
        assert create_schema(conn) is False  # it is there, at version 10
    engine.dispose()
    type_id = store.put_execution_type(metadata_store_pb2.ExecutionType(name="Trainer"))
    assert [t.id for t in store.get_execution_types()] == [type_id]
