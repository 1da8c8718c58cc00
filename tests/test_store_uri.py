"""Store URIs and Airflow connections name a store on SQLite, PostgreSQL or MySQL/MariaDB."""

from __future__ import annotations

import pytest

from airflow_graphlets.errors import StoreConfigError
from airflow_graphlets.store.uri import connection_to_store_uri, parse_store_uri


def test_sqlite_uri_with_four_slashes_is_an_absolute_path():
    config = parse_store_uri("sqlite:////var/lib/mlmd/store.sqlite")
    assert (config.backend, config.path) == ("sqlite", "/var/lib/mlmd/store.sqlite")
    assert config.mlmd_connection_config().sqlite.filename_uri == "/var/lib/mlmd/store.sqlite"


@pytest.mark.parametrize(
    "uri, backend, port",
    [
        ("postgresql://ml:s3cret@db.internal:6543/mlmd", "postgresql", 6543),
        ("postgres://ml:s3cret@db.internal/mlmd", "postgresql", 5432),
        ("mysql://ml:s3cret@db.internal/mlmd", "mysql", 3306),
        ("mariadb://ml:s3cret@db.internal:3307/mlmd", "mysql", 3307),
    ],
)
def test_server_uris_keep_every_part(uri, backend, port):
    config = parse_store_uri(uri)
    assert (config.backend, config.host, config.port, config.user, config.password, config.database) == (
        backend, "db.internal", port, "ml", "s3cret", "mlmd"
    )


def test_printed_uris_hide_the_password():
    config = parse_store_uri("postgresql://ml:s3cret@db:5432/mlmd")
    assert str(config) == "postgresql://ml:***@db:5432/mlmd"
    assert "s3cret" in config.sqlalchemy_url()


def test_escaped_characters_in_credentials_round_trip():
    config = parse_store_uri("postgresql://ml%40team:p%2Fw@db:5432/mlmd")
    assert (config.user, config.password) == ("ml@team", "p/w")
    assert parse_store_uri(config.uri(hide_password=False)) == config


@pytest.mark.parametrize(
    "uri, names",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("/tmp/mlmd.sqlite", "no scheme"),
        ("oracle://u@h/db", "'oracle' is not supported"),
        ("sqlite://", "no file path"),
        ("sqlite:///:memory:", "lose every record"),
        ("sqlite:////tmp/dir/", "names a directory"),
        ("postgresql://u@/mlmd", "has no host"),
        ("postgresql://u@host:5432/", "must name one database"),
        ("postgresql://u@host:5432/a/b", "must name one database"),
        ("mysql://host:3306/mlmd", "has no user"),
        ("postgresql://u:secret@host:99999/mlmd", "malformed"),
    ],
)
def test_bad_uris_are_refused_with_what_is_wrong(uri, names):
    with pytest.raises(StoreConfigError, match=names):
        parse_store_uri(uri)


def test_error_messages_never_show_the_password():
    with pytest.raises(StoreConfigError) as raised:
        parse_store_uri("postgresql://u:topsecret@host:5432/")
    assert "topsecret" not in str(raised.value) and "u:***@host" in str(raised.value)


def test_an_mlmd_connection_carries_its_uri_in_extra():
    uri = connection_to_store_uri("mlmd", extra={"uri": "mysql://root@127.0.0.1:3306/mlmd"})
    assert uri == "mysql://root@127.0.0.1:3306/mlmd"


def test_plain_database_connections_become_store_uris():
    assert connection_to_store_uri("sqlite", schema="/data/mlmd.sqlite") == "sqlite:////data/mlmd.sqlite"
    assert (
        connection_to_store_uri("postgres", host="db", port=5433, login="ml", password="p w", schema="mlmd")
        == "postgresql://ml:p%20w@db:5433/mlmd"
    )
    assert parse_store_uri(connection_to_store_uri("mysql", host="db", login="root", schema="m")).port == 3306


def test_an_mlmd_connection_may_give_backend_and_fields():
    uri = connection_to_store_uri("mlmd", host="db", login="ml", schema="mlmd", extra={"backend": "postgresql"})
    assert uri == "postgresql://ml@db:5432/mlmd"


@pytest.mark.parametrize(
    "conn_type, fields, names",
    [
        ("http", {}, "has type 'http'"),
        ("mlmd", {}, "needs extra 'uri'"),
        ("postgres", {"host": "db"}, "missing login, schema"),
        ("sqlite", {}, "names no database file"),
    ],
)
def test_connections_that_name_no_store_are_refused(conn_type, fields, names):
    with pytest.raises(StoreConfigError, match=names) as raised:
        connection_to_store_uri(conn_type, conn_id="my_store", **fields)
    assert "my_store" in str(raised.value)
