"""Airflow edge: read ``[graphlets]`` from Airflow's configuration and the store's connection."""

from __future__ import annotations

import logging
from typing import Any

from airflow_graphlets.config import OPTIONS, SECTION, GraphletsSettings, settings_from_mapping
from airflow_graphlets.store.uri import StoreConfig, connection_to_store_uri, parse_store_uri

log = logging.getLogger(__name__)


def load_settings() -> GraphletsSettings:
    """The ``[graphlets]`` settings from airflow.cfg and ``AIRFLOW__GRAPHLETS__*`` variables.

    Raises:
      StoreConfigError: an option is malformed (the message names it and the fix).
    """
    conf = _airflow_conf()
    values = {opt.name: conf.get(SECTION, opt.name, fallback=None) for opt in OPTIONS}
    home = conf.get("core", "airflow_home", fallback=None)
    return settings_from_mapping({k: v for k, v in values.items() if v not in (None, "")}, airflow_home=home)


def resolve_store(settings: GraphletsSettings) -> StoreConfig:
    """The MLMD store: the connection ``settings.conn_id`` if it exists, else ``default_store``.

    Raises:
      StoreConfigError: the connection exists but does not describe a store.
    """
    connection = _find_connection(settings.conn_id)
    if connection is None:
        return parse_store_uri("sqlite:///" + settings.default_store)
    return store_config_from_connection(connection)


def store_config_from_connection(conn: Any) -> StoreConfig:
    """The store an Airflow ``Connection`` names.

    Raises:
      StoreConfigError: the connection does not describe a store (message names it and the fix).
    """
    uri = connection_to_store_uri(
        conn.conn_type,
        host=conn.host,
        port=conn.port,
        login=conn.login,
        password=conn.password,
        schema=conn.schema,
        extra=conn.extra_dejson,
        conn_id=conn.conn_id,
    )
    return parse_store_uri(uri)


def _find_connection(conn_id: str):
    """The Airflow connection ``conn_id``, or ``None`` when no secrets backend has it."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def _airflow_conf():
    try:
        from airflow.sdk.configuration import conf
    except ImportError:  # pragma: no cover - older task SDKs
        from airflow.configuration import conf
    return conf

