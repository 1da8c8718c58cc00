"""Airflow edge: provider metadata, found through the ``apache_airflow_provider`` entry point.

Makes airflow-graphlets a third-party provider: the ``mlmd`` connection type (so the store is an
ordinary Airflow connection) and the documented ``[graphlets]`` configuration section.
"""

from __future__ import annotations

from airflow_graphlets import __version__
from airflow_graphlets.config import OPTIONS, SECTION


def get_provider_info() -> dict:
    """What Airflow's ProvidersManager reads about this package."""
    return {
        "package-name": "airflow-graphlets",
        "name": "airflow-graphlets",
        "description": "Records task runs into ML Metadata and prunes training runs that will not be deployed.",
        "versions": [__version__],
        "connection-types": [
            {"connection-type": "mlmd", "hook-class-name": "airflow_graphlets.hook.MlmdHook"},
        ],
        "task-decorators": [
            {"name": "graphlet_gate", "class-name": "airflow_graphlets.gate_operator.graphlet_gate"},
        ],
        "config": {
            SECTION: {
                "description": "airflow-graphlets: where and how task runs are recorded into ML Metadata.",
                "options": {
                    option.name: {
                        "description": option.description,
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": None,
                        "default": option.default,
                    }
                    for option in OPTIONS
                },
            }
        },
    }
