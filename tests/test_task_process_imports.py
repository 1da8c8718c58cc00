"""A task's process loads the listener but never ml-metadata: MLMD runs in the flusher only."""

from __future__ import annotations

import subprocess
import sys


def test_the_listener_path_never_imports_ml_metadata():
    probe = (
        "import sys\n"
        "import airflow_graphlets.plugin, airflow_graphlets.recorder.capture, airflow_graphlets.airflow_config\n"
        "import airflow_graphlets.lineage, airflow_graphlets.assets, airflow_graphlets.hook\n"
        "print(sorted(m for m in sys.modules if m.startswith('ml_metadata')))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_dag_file_with_a_gate_parses_without_the_gates_machinery():
    """Every task of a DAG parses its file: the gate's NumPy, SQLAlchemy and scikit-learn load
    only when a gate runs."""
    probe = (
        "import sys\n"
        "import airflow.sdk\n"
        "before = set(sys.modules)\n"
        "from airflow_graphlets.gate_operator import GraphletGateOperator, graphlet_gate\n"
        "from airflow_graphlets.prune.policy import Guardrails\n"
        "Guardrails(min_history=5)\n"
        "print(sorted({m.split('.')[0] for m in set(sys.modules) - before} & {'numpy', 'sqlalchemy', 'sklearn'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
