"""Where the skip log's Overrule reaches Airflow's REST API, and what it says when it cannot."""

from __future__ import annotations

import pytest
from starlette.requests import Request
from support.airflow_services import free_port

from airflow_graphlets.ui.airflow_clear import ClearOutcome, api_address, clear_training_branch


def request_on(server, scheme: str = "http", headers: dict | None = None) -> Request:
    """A request as the API server's ASGI layer hands it over, taken on ``server`` (host, port)."""
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request({"type": "http", "method": "POST", "scheme": scheme, "server": server, "path": "/graphlets/x",
                    "root_path": "", "query_string": b"", "headers": raw})


def test_the_api_is_dialled_where_the_request_came_in_unless_configured():
    assert api_address(request_on(("10.0.0.5", 8080)), "", "") == "http://10.0.0.5:8080"
    assert api_address(request_on(("::1", 8443), "https"), "", "/airflow") == "https://[::1]:8443/airflow"
    assert api_address(request_on(("10.0.0.5", 8080)), "http://airflow.internal:8080/af/", "") == \
        "http://airflow.internal:8080/af"


def test_a_unix_socket_needs_the_address_configured():
    with pytest.raises(ValueError, match=r"set \[graphlets\] airflow_api_url"):
        api_address(request_on(("/run/airflow.sock", None)), "", "")


def test_an_airflow_that_cannot_be_reached_is_said_not_raised():
    port = free_port()  # nothing listens there
    outcome = clear_training_branch(request_on(("127.0.0.1", port), headers={"Authorization": "Bearer t"}),
                                    f"http://127.0.0.1:{port}", "dag", "run", "gate")
    assert outcome.cleared == () and "could not reach Airflow's API at http://127.0.0.1:" in outcome.error
    assert outcome.note.startswith("Airflow did not clear the run: could not reach")
    assert ClearOutcome(cleared=("gate", "trainer")).note == "Airflow cleared gate, trainer"
