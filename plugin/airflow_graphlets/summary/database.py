"""The summary's database: opened from ``[graphlets] summary_uri``, its tables made when missing.

Kept free of NumPy and the extraction, so a page's first request opens it quickly.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from airflow_graphlets.errors import GraphletsError, mask_secrets
from airflow_graphlets.summary import tables


def summary_engine(url: str) -> Engine:
    """An engine on the summary database, its tables created when missing.

    Raises:
      GraphletsError: the URL is not a database SQLAlchemy can open (the message says which).
    """
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise GraphletsError(
            f"[graphlets] summary_uri = {mask_secrets(url)!r} is not a database URL: give one such as "
            "sqlite:////var/airflow/graphlets/summary.sqlite or postgresql://user@host/db"
        ) from None
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        os.makedirs(os.path.dirname(os.path.abspath(parsed.database)), exist_ok=True)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg2")
    if parsed.get_backend_name() == "mysql" and parsed.drivername == "mysql":
        parsed = parsed.set(drivername="mysql+pymysql")
    engine = sa.create_engine(parsed)
    if parsed.get_backend_name() == "sqlite":
        # WAL: pages keep reading the old summary while a refresh writes the new one.
        sa.event.listen(engine, "connect", lambda conn, _: conn.execute("PRAGMA journal_mode=WAL"))
    tables.metadata.create_all(engine)
    return engine
