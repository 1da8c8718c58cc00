"""Installed as managed Airflow installs a plugin: a fresh virtualenv on Python 3.12 (Airflow's
images' default), plain ``pip install`` of the project, no uv and no overrides; then a real DAG
run is recorded and analysed there, with ml-metadata absent."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")
DAY = "2026-01-05T00:00:00+00:00"


def newer_python() -> str:
    """Python 3.12 (or 3.13) from pyenv, where these machines keep it."""
    root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip() or os.path.expanduser(
        "~/.pyenv")
    found = sorted(glob.glob(os.path.join(root, "versions", "3.12.*", "bin", "python3.12")) +
                   glob.glob(os.path.join(root, "versions", "3.13.*", "bin", "python3.13")))
    if not found:
        raise AssertionError(f"No Python 3.12 or 3.13 under {root}/versions: install one with pyenv to run this check.")
    return found[0]


def run(args: list[str], env: dict[str, str] | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)} failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done


@pytest.mark.airflow
def test_plain_pip_installs_records_and_analyses_on_python_3_12(tmp_path):
    venv = tmp_path / "venv"
    run([newer_python(), "-m", "venv", str(venv)])
    python = str(venv / "bin" / "python")
    # pip only: no constraints, no overrides, as a requirements file would install it. Bytecode
    # is written as modules are first imported (PYTHONDONTWRITEBYTECODE is not passed on below),
    # not for all of Airflow's files at install: most are never imported here.
    # From a copy of the source: pip builds in the tree it is given, and an egg-info written into
    # this checkout's plugin/ (on the editable install's path) would show every Airflow here the
    # plugin twice.
    source = shutil.copytree(ROOT, tmp_path / "source", ignore=shutil.ignore_patterns(
        ".git", ".venv", ".tools", ".airflow", "build", "*.egg-info", "__pycache__", "results", "tests"))
    run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile", str(source)],
        timeout=1500)
    version = run([python, "-c", "import sys; print(sys.version_info[:2])"]).stdout.strip()
    assert version in ("(3, 12)", "(3, 13)")
    absent = run([python, "-c", "import importlib.util; print(importlib.util.find_spec('ml_metadata'))"])
    assert absent.stdout.strip() == "None"

    store = tmp_path / "mlmd.sqlite"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "VIRTUAL_ENV", "PYTHON"))},
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": os.path.join(TESTS, "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__GRAPHLETS__SPOOL_DIR": str(tmp_path / "spool"),
        "AIRFLOW__GRAPHLETS__FLUSHER_IDLE_SECONDS": "5",
        "AIRFLOW_CONN_MLMD_DEFAULT": f"sqlite:///{store}",
        "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
    }
    run([str(venv / "bin" / "airflow"), "db", "migrate"], env=env)
    dag_run = run([python, os.path.join(TESTS, "support", "run_dag.py"), "graphlets_test_pipeline", DAY], env=env)
    assert dag_run.stdout.strip().splitlines()[-1].endswith("success"), dag_run.stderr[-3000:]
    # The flusher drains the spool into the store; wait for it as the suite does elsewhere.
    sys.path.insert(0, TESTS)
    from support.airflow_env import wait_until_recorded

    wait_until_recorded(str(tmp_path / "spool"))
    report = json.loads(run([str(venv / "bin" / "graphlets"), "analyze", "--store", f"sqlite:///{store}", "--json"],
                            env=env).stdout)
    assert report["totals"]["graphlets"] >= 1 and report["totals"]["pushed"] + report["totals"]["not_pushed"] >= 1, report
    tasks = run([python, "-c", (
        "from airflow_graphlets.store.connect import open_store\n"
        "from airflow_graphlets.store.uri import parse_store_uri\n"
        f"store = open_store(parse_store_uri('sqlite:///{store}'))\n"
        "print(sorted({e.custom_properties['task_id'].string_value for e in store.get_executions()}))\n"
        "import sys; print(sorted(m for m in sys.modules if m.startswith('ml_metadata')))\n")], env=env).stdout
    recorded, imported = tasks.strip().splitlines()[-2:]
    assert "'trainer'" in recorded and "'pusher'" in recorded, recorded
    assert imported == "[]"
