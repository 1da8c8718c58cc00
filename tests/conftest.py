"""Shared fixtures: real MLMD stores on SQLite, PostgreSQL and MariaDB, and a real Airflow."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from support.airflow_env import AirflowEnv  # noqa: E402
from support.databases import BACKENDS, create_store_uri, drop_store  # noqa: E402

from airflow_graphlets.store.connect import open_store  # noqa: E402
from airflow_graphlets.store.uri import parse_store_uri  # noqa: E402


# The longest test files first: pytest-xdist hands files out in collection order, and a long one
# handed out last keeps one worker busy while the other idles.
_LONGEST_FIRST = (
    "test_celery_production.py",
    "test_ct_pipelines_airflow.py",
    "test_graphlets_recorded_store.py",
    "test_gate_airflow.py",
    "test_recording_real_dags.py",
    "test_ui_browser.py",
    "test_prune_gate.py",
    "test_recording_with_a_scheduler.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: position for position, name in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


@pytest.fixture(params=BACKENDS)
def store_uri(request, tmp_path) -> str:
    """A fresh, empty database on each backend, as a store URI."""
    uri = create_store_uri(request.param, str(tmp_path))
    yield uri
    drop_store(uri)


@pytest.fixture
def sqlite_store_uri(tmp_path) -> str:
    return create_store_uri("sqlite", str(tmp_path))


@pytest.fixture
def postgres_store_uri(tmp_path) -> str:
    uri = create_store_uri("postgresql", str(tmp_path))
    yield uri
    drop_store(uri)


@pytest.fixture
def store(store_uri):
    """An open MLMD store on each backend."""
    return open_store(parse_store_uri(store_uri))


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory) -> AirflowEnv:
    """A migrated Airflow 3 metadata DB (SQLite) with the test DAGs, shared by the session."""
    env = AirflowEnv(home=str(tmp_path_factory.mktemp("airflow_home")))
    env.migrate()
    return env


@pytest.fixture(scope="session", autouse=True)
def _stop_test_flushers(tmp_path_factory):
    """Flushers outlive the tasks that start them (by design); end the tests' own at the end."""
    yield
    base = str(tmp_path_factory.getbasetemp())
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmdline = handle.read().decode(errors="replace")
        except OSError:
            continue
        if "airflow_graphlets.recorder.flusher" in cmdline and base in cmdline:
            try:
                os.kill(int(pid), 9)
            except OSError:
                pass
