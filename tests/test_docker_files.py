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


def test_the_image_uses_the_tested_airflow_and_python():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    [base] = re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.M)
    assert base == f"apache/airflow:{pinned('apache-airflow')}-python3.11"


def test_the_image_installs_with_the_pins_and_overrides():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert "--constraint /opt/airflow-graphlets/constraints.txt" in dockerfile
    assert "--override /opt/airflow-graphlets/overrides.txt" in dockerfile
    for copied in ("pyproject.toml", "constraints.txt", "overrides.txt", "plugin"):
        assert copied in dockerfile
