"""Fresh, real databases for tests: a SQLite file, a PostgreSQL database or a MariaDB database."""

from __future__ import annotations

import os
import uuid

import psycopg2
import pymysql

PG = dict(host="127.0.0.1", port=5432, user="postgres")
MARIA = dict(host="127.0.0.1", port=3306, user="root", password="")
BACKENDS = ("sqlite", "postgresql", "mysql")


def recreate_postgres_database(name: str, template: str | None = None) -> str:
    """Drop PostgreSQL database ``name`` if it exists, create it empty (or as a copy of
    ``template``) and return its store URI."""
    conn = psycopg2.connect(dbname="postgres", **PG)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    conn.close()
    return f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{name}"


def create_store_uri(backend: str, tmp_dir: str) -> str:
    """Create an empty database of ``backend`` and return its store URI."""
    name = f"graphlets_test_{uuid.uuid4().hex[:12]}"
    if backend == "sqlite":
        return f"sqlite:///{os.path.join(tmp_dir, name + '.sqlite')}"
    if backend == "postgresql":
        return recreate_postgres_database(name)
    conn = pymysql.connect(**MARIA, autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    conn.close()
    return f"mysql://{MARIA['user']}@{MARIA['host']}:{MARIA['port']}/{name}"


def drop_store(uri: str) -> None:
    """Remove the database behind a URI made by :func:`create_store_uri`."""
    name = uri.rsplit("/", 1)[1]
    if uri.startswith("sqlite"):
        return
    if uri.startswith("postgresql"):
        conn = psycopg2.connect(dbname="postgres", **PG)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()
        return
    conn = pymysql.connect(**MARIA, autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()
