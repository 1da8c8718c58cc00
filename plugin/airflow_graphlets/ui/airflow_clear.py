"""Airflow edge: clear an overruled run's training branch through Airflow's own REST API.

The skip log's *Overrule* asks Airflow (``POST /api/v2/dags/{dag}/clearTaskInstances``) to clear
the run's gate task and everything downstream of it, as the signed-in user: the request carries
the user's own credentials (their bearer token or Airflow's ``_token`` cookie), so Airflow checks
their permission to clear task instances of that DAG, records the clear in its audit log under
their name, and sets the run queued again for the scheduler. Nothing here touches Airflow's
tables.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote

from fastapi import Request

COOKIE = "_token"  # Airflow 3's session cookie (airflow.api_fastapi.auth.managers.base_auth_manager)
TIMEOUT_SECONDS = 20.0


@dataclass(frozen=True)
class ClearOutcome:
    """What Airflow did with the clear: the task ids it cleared, or why it did not."""

    cleared: tuple[str, ...] = ()
    error: str = ""

    @property
    def note(self) -> str:
        """One line for the skip log, kept with the override."""
        if self.error:
            return f"Airflow did not clear the run: {self.error}"
        return f"Airflow cleared {', '.join(self.cleared)}" if self.cleared else "Airflow had nothing to clear"


def api_address(request: Request, configured: str, airflow_root: str) -> str:
    """Airflow's REST API root: ``[graphlets] airflow_api_url`` when set, else the address and
    port this request came in on, with Airflow's sub-path (``airflow_root``)."""
    if configured:
        return configured.rstrip("/")
    server = request.scope.get("server")
    if not server or server[1] is None:
        raise ValueError("the API server listens on a socket without a port: set [graphlets] airflow_api_url")
    host, port = server
    host = f"[{host}]" if ":" in host else host
    return f"{request.url.scheme}://{host}:{port}{airflow_root}"


def clear_training_branch(request: Request, api_root: str, dag_id: str, run_id: str, gate_task_id: str) -> ClearOutcome:
    """Ask Airflow to clear ``gate_task_id`` and its downstream tasks in run ``run_id``, as the
    user of ``request``; never raises (the outcome says what went wrong)."""
    import httpx

    headers = {"Content-Type": "application/json"}
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        headers["Authorization"] = authorization
    cookies = {COOKIE: request.cookies[COOKIE]} if COOKIE in request.cookies else {}
    body = {"dry_run": False, "task_ids": [gate_task_id], "dag_run_id": run_id, "include_downstream": True,
            "include_upstream": False, "only_failed": False, "reset_dag_runs": True}
    url = f"{api_root}/api/v2/dags/{quote(dag_id, safe='')}/clearTaskInstances"
    try:
        with httpx.Client(timeout=TIMEOUT_SECONDS, cookies=cookies) as client:
            response = client.post(url, content=json.dumps(body), headers=headers)
    except httpx.HTTPError as err:
        return ClearOutcome(error=f"could not reach Airflow's API at {api_root} ({type(err).__name__}: {err}); "
                                  "set [graphlets] airflow_api_url to an address the API server can dial")
    if response.status_code != 200:
        return ClearOutcome(error=f"Airflow answered {response.status_code}: {_detail(response)}")
    try:
        cleared = sorted({ti["task_id"] for ti in response.json()["task_instances"]})
    except (ValueError, KeyError, TypeError):
        return ClearOutcome(error="Airflow's answer was not a list of task instances")
    return ClearOutcome(cleared=tuple(cleared))


def _detail(response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    return str(detail or response.text or response.reason_phrase)[:300]
