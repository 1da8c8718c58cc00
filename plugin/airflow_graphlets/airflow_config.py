"""Airflow edge: read ``[graphlets]`` from Airflow's configuration and the store's connection."""

from __future__ import annotations

import logging
import threading
from typing import Any

from airflow_graphlets.config import OPTIONS, SECTION, GraphletsSettings, settings_from_mapping
from airflow_graphlets.errors import ConnectionLookupError, first_line
from airflow_graphlets.store.uri import StoreConfig, connection_to_store_uri, parse_store_uri

log = logging.getLogger(__name__)
LOOKUP_TIMEOUT_SECONDS = 10.0


def load_settings() -> GraphletsSettings:
    """The ``[graphlets]`` settings from airflow.cfg and ``AIRFLOW__GRAPHLETS__*`` variables.

    Raises:
      StoreConfigError: an option is malformed (the message names it and the fix).
    """
    conf = _airflow_conf()
    values = {opt.name: conf.get(SECTION, opt.name, fallback=None) for opt in OPTIONS}
    home = conf.get("core", "airflow_home", fallback=None)
    return settings_from_mapping({k: v for k, v in values.items() if v not in (None, "")}, airflow_home=home)


def resolve_store(settings: GraphletsSettings, *, own_session: bool = False) -> StoreConfig:
    """The MLMD store: the connection ``settings.conn_id`` if it exists, else ``default_store``.

    Args:
      own_session: look the connection up in a thread of its own. Inside the scheduler (DAG-run
        listeners) this is a must: Airflow's metastore secrets backend uses the thread's scoped
        session and closes it, which would detach the objects the scheduler is working on and
        stop it. A new thread has a session of its own.

    Raises:
      StoreConfigError: the connection exists but does not describe a store.
      ConnectionLookupError: a secrets backend failed and none found the connection: whether
        it exists is unknown, so the default store is not used (records wait in the spool).
    """
    connection = _in_own_thread(_find_connection, settings.conn_id) if own_session else _find_connection(settings.conn_id)
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


def _in_own_thread(function, *args):
    """``function(*args)`` run in a new thread (so with its own scoped database session); its
    result returned or its exception raised here."""
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["result"] = function(*args)
        except BaseException as err:  # noqa: BLE001 - raised again in the calling thread
            outcome["error"] = err

    thread = threading.Thread(target=call, name="graphlets-connection-lookup", daemon=True)
    thread.start()
    thread.join(LOOKUP_TIMEOUT_SECONDS)  # a hung secrets backend must not hang the scheduler
    if thread.is_alive():
        raise ConnectionLookupError(
            f"Looking up the store's connection did not finish within {LOOKUP_TIMEOUT_SECONDS:g} s (a secrets "
            "backend hangs?). Records stay in the spool until a lookup finishes.")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")


def _find_connection(conn_id: str):
    """The Airflow connection ``conn_id``, or ``None`` when no secrets backend has it.

    Airflow answers "not found" also when a secrets backend failed (it logs the error and asks
    the next one). So a "not found" is checked by asking each backend of this process again:
    one that raises makes the answer "unknown", not "absent".

    Raises:
      ConnectionLookupError: a backend failed and none had the connection.
    """
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        pass
    failures = []
    for backend in _secrets_backends():
        try:
            found = backend.get_connection(conn_id=conn_id)
        except Exception as err:  # noqa: BLE001 - any failure means "unknown"
            failures.append(f"{type(backend).__name__}: {first_line(err)}")
            continue
        if found:
            return found  # a backend that failed a moment ago answers now
    if failures:
        raise ConnectionLookupError(
            f"Looking up the connection {conn_id!r} failed ({'; '.join(failures)}), so whether it exists is "
            "unknown. Records stay in the spool until the lookup works; the default store is used only for a "
            "connection that does not exist.")
    return None


def _secrets_backends() -> list:
    try:
        from airflow.sdk.execution_time.supervisor import ensure_secrets_backend_loaded
    except ImportError:  # pragma: no cover - other task SDKs
        return []
    return list(ensure_secrets_backend_loaded())


def _airflow_conf():
    try:
        from airflow.sdk.configuration import conf
    except ImportError:  # pragma: no cover - older task SDKs
        from airflow.configuration import conf
    return conf

