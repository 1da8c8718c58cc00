"""Airflow edge: Assets that say which MLMD artifact they are.

An Asset becomes an MLMD artifact when its ``extra`` names an MLMD type::

    examples = mlmd_asset("churn_examples", "file:///data/churn/examples", "Examples")

    @task(outlets=[examples])
    def ingest(*, outlet_events):
        outlet_events[examples].extra.update(span=7, mlmd_uri="file:///data/churn/examples/7")

Keys of ``extra`` that steer the recorder: ``mlmd_type`` (MLMD type, TFX names), ``mlmd_key``
(event-path key, defaults to TFX's key for the type), ``mlmd_uri`` (this run's artifact uri,
defaults to the Asset's uri), ``mlmd_index``. Every other key is an artifact property (``span``,
``version``, ``split_names``, ``blessed``, ``pushed``, metrics). Static extras are set when the DAG
is declared; runtime ones through ``outlet_events[asset].extra`` while the task runs.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset

from airflow_graphlets.recorder.capture import MLMD_KEY, MLMD_TYPE


def mlmd_asset(name: str, uri: str, mlmd_type: str, *, key: str | None = None, **extra: Any) -> Asset:
    """An Airflow ``Asset`` recorded as an MLMD artifact of type ``mlmd_type``.

    Args:
      name: the Asset's name.
      uri: the Asset's uri (and the artifact's, unless a run sets ``mlmd_uri``).
      mlmd_type: MLMD artifact type (``Examples``, ``Model``, ``ModelBlessing``, ``PushedModel``...).
      key: event-path key; TFX's key for the type when omitted.
      **extra: static artifact properties.
    """
    payload: dict[str, Any] = {MLMD_TYPE: mlmd_type, **extra}
    if key:
        payload[MLMD_KEY] = key
    return Asset(name=name, uri=uri, extra=payload)
