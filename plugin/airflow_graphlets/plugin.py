"""Airflow edge: the plugin Airflow discovers through the ``airflow.plugins`` entry point."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from airflow_graphlets.recorder.listener import GraphletsListener


class GraphletsPlugin(AirflowPlugin):
    """Registers the recorder's listener in every Airflow process that loads plugins."""

    name = "airflow_graphlets"
    listeners = [GraphletsListener()]
