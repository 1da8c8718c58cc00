"""TLS options in a store address reach every connection made to the store (issue 22, item 9).

The local PostgreSQL and MariaDB serve no TLS: an address that demands a verified certificate
must fail to connect, naming the cause, on every path (the native store, the read-only readers,
the flusher's row batch, ml-metadata's client); one that allows plain connections still works.
"""

from __future__ import annotations

import pytest

from airflow_graphlets.errors import StoreConfigError, StoreUnavailableError
from airflow_graphlets.store.connect import open_mlmd_client, open_store
from airflow_graphlets.store.inspect import read_only_engine
from airflow_graphlets.store.row_batch import RowBatch
from airflow_graphlets.store.uri import connection_to_store_uri, parse_store_uri

_MISSING_CA = "/nonexistent/root.crt"


def _store(backend: str, tmp_path):
    """A new store on ``backend`` (schema made), dropped after the test."""
    from support.databases import create_store_uri, drop_store

    uri = create_store_uri(backend, str(tmp_path))
    open_store(parse_store_uri(uri)).close()
    yield uri
    drop_store(uri)


@pytest.fixture
def pg_uri(tmp_path):
    yield from _store("postgresql", tmp_path)


@pytest.fixture
def mysql_uri(tmp_path):
    yield from _store("mysql", tmp_path)


def test_postgresql_tls_options_are_honoured_by_every_connection(pg_uri):
    strict = parse_store_uri(f"{pg_uri}?sslmode=verify-full&sslrootcert={_MISSING_CA}")
    assert strict.options == (("sslmode", "verify-full"), ("sslrootcert", _MISSING_CA))
    assert "sslmode=verify-full" in str(strict)
    for connect in (open_store, read_only_engine, lambda config: RowBatch(config, lambda _: None)):
        with pytest.raises(StoreUnavailableError, match="root certificate|SSL|ssl"):
            connect(strict)
    with pytest.raises(StoreUnavailableError, match="root certificate|SSL|ssl"):
        open_mlmd_client(strict)
    relaxed = parse_store_uri(f"{pg_uri}?sslmode=disable")
    open_store(relaxed).close()
    read_only_engine(relaxed).dispose()
    RowBatch(relaxed, lambda _: None).close()


def test_mysql_tls_options_are_honoured(mysql_uri):
    strict = parse_store_uri(f"{mysql_uri}?ssl_ca={_MISSING_CA}&ssl_verify_cert=true")
    for connect in (open_store, read_only_engine):
        with pytest.raises(StoreUnavailableError):
            connect(strict)


def test_an_unknown_option_is_refused_naming_the_ones_that_exist():
    with pytest.raises(StoreConfigError, match="sslmod.*sslmode, sslcert"):
        parse_store_uri("postgresql://u@h:5432/db?sslmod=require")
    with pytest.raises(StoreConfigError, match="SQLite"):
        parse_store_uri("sqlite:////tmp/x.sqlite?sslmode=require")


def test_a_secret_option_is_masked_and_connection_extras_become_options():
    config = parse_store_uri("postgresql://u:pw@h:5432/db?sslmode=require&sslpassword=hunter2")
    assert "hunter2" not in str(config) and "pw" not in str(config).split("@")[0].split("//")[1]
    uri = connection_to_store_uri("postgres", host="h", login="u", schema="db",
                                  extra={"sslmode": "verify-full", "sslrootcert": "/ca.pem"})
    assert parse_store_uri(uri).options == (("sslmode", "verify-full"), ("sslrootcert", "/ca.pem"))


def test_an_mlmd_connection_keeps_its_password_in_the_password_field():
    uri = connection_to_store_uri("mlmd", password="s3cr:t", extra={"uri": "postgresql://mlmd@db:5432/mlmd?sslmode=require"})
    config = parse_store_uri(uri)
    assert (config.user, config.password, config.options) == ("mlmd", "s3cr:t", (("sslmode", "require"),))
    with pytest.raises(StoreConfigError, match="password field only"):
        connection_to_store_uri("mlmd", password="a", extra={"uri": "postgresql://mlmd:b@db:5432/mlmd"})


def test_an_ipv6_host_keeps_its_brackets_so_the_address_parses_again():
    config = parse_store_uri("postgresql://mlmd@[::1]:5432/mlmd")
    assert config.host == "::1" and parse_store_uri(config.uri(hide_password=False)) == config
    assert "[::1]" in config.sqlalchemy_url()


@pytest.mark.parametrize("typed", ["mlmd:hunter2@db.internal:5432/mlmd", "postgresql//mlmd:hunter2@db/mlmd",
                                   "postgresql://mlmd:hunter2@db:notaport/mlmd"])
def test_an_address_in_an_error_never_shows_its_password(typed):
    with pytest.raises(StoreConfigError) as refused:
        parse_store_uri(typed)
    assert "hunter2" not in str(refused.value) and "mlmd:***@" in str(refused.value)


def test_a_malformed_summary_address_never_shows_its_password():
    from airflow_graphlets.errors import GraphletsError
    from airflow_graphlets.summary.database import summary_engine

    with pytest.raises(GraphletsError) as refused:
        summary_engine("summary:hunter2@db/summary")
    assert "hunter2" not in str(refused.value)
