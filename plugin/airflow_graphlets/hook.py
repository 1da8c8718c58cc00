"""Airflow edge: the ``mlmd`` connection type and a hook that opens the store it names."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from airflow_graphlets.airflow_config import store_config_from_connection
from airflow_graphlets.store.uri import StoreConfig


class MlmdHook(BaseHook):
    """Connects to an ML Metadata store named by an Airflow connection.

    The connection is of type ``mlmd`` with the store's URI in its extra (``{"uri":
    "postgresql://user@host:5432/mlmd"}``), or a plain ``sqlite``/``postgres``/``mysql``
    connection such as ``AIRFLOW_CONN_MLMD_DEFAULT='mysql://root@127.0.0.1:3306/mlmd'``.

    Args:
      mlmd_conn_id: the connection's id.
    """

    conn_name_attr = "mlmd_conn_id"
    default_conn_name = "mlmd_default"
    conn_type = "mlmd"
    hook_name = "ML Metadata"

    def __init__(self, mlmd_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mlmd_conn_id = mlmd_conn_id

    def store_config(self) -> StoreConfig:
        """Where the store is.

        Raises:
          StoreConfigError: the connection does not describe a store (message says how to fix it).
        """
        return store_config_from_connection(self.get_connection(self.mlmd_conn_id))

    def get_conn(self):
        """The store, with ml-metadata's ``MetadataStore`` methods (native: no ml-metadata needed)."""
        from airflow_graphlets.store.connect import open_store

        return open_store(self.store_config())

    def get_mlmd_client(self):
        """ml-metadata's own ``MetadataStore`` for the connection (needs ``airflow-graphlets[mlmd]``)."""
        from airflow_graphlets.store.connect import open_mlmd_client

        return open_mlmd_client(self.store_config())

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """How the connection form looks in the Airflow UI."""
        return {
            # The password has its own field: Airflow masks it in logs and the UI, not the extras.
            "hidden_fields": ["port", "schema", "login", "host"],
            "relabeling": {},
            "placeholders": {"extra": '{"uri": "postgresql://user@host:5432/mlmd?sslmode=verify-full"}',
                             "password": "the store's password (kept out of the uri)"},
        }

