"""Airflow edge: the plugin Airflow discovers through the ``airflow.plugins`` entry point.

It brings the recorder's listener to every Airflow process, and to the API server the Graphlets
pages (a FastAPI app mounted at ``/graphlets``) with their entries in the UI's navigation and a
"Graphlets" tab on each DAG.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from airflow_graphlets.recorder.listener import GraphletsListener

MOUNT = "/graphlets"  # also airflow_graphlets.ui.app.MOUNT; kept here so task processes need not import FastAPI


class LazyGraphletsApp:
    """The Graphlets FastAPI app, built on its first request: every Airflow process loads the
    plugin, only the API server serves pages, and task processes stay free of the UI's imports."""

    def __init__(self) -> None:
        self._app = None

    async def __call__(self, scope, receive, send) -> None:
        if self._app is None:
            from airflow_graphlets.ui.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)

    def __repr__(self) -> str:
        return "airflow_graphlets.ui.app:create_app"


class GraphletsPlugin(AirflowPlugin):
    """Registers the recorder's listener and the Graphlets UI."""

    name = "airflow_graphlets"
    listeners = [GraphletsListener()]
    fastapi_apps = [{"app": LazyGraphletsApp(), "url_prefix": MOUNT, "name": "Graphlets"}]
    # Relative hrefs: Airflow's UI resolves them against its own base URL, so the pages open
    # when Airflow is served under a sub-path ([api] base_url) as well as at the root.
    external_views = [
        {"name": "Waste overview", "href": f"{MOUNT[1:]}/", "url_route": "graphlets", "category": "Graphlets",
         "destination": "nav"},
        {"name": "Skip log", "href": f"{MOUNT[1:]}/skips", "url_route": "graphlets-skips", "category": "Graphlets",
         "destination": "nav"},
        {"name": "Graphlets", "href": f"{MOUNT[1:]}/pipeline?dag={{DAG_ID}}", "url_route": "graphlets-dag",
         "destination": "dag"},
    ]
