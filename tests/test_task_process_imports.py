"""A task's process loads the listener but never ml-metadata: MLMD runs in the flusher only."""

from __future__ import annotations

import json
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


def test_every_command_works_with_ml_metadata_unimportable(tmp_path):
    """Simulate, analyse with both readers, replay, train a predictor, override, read the skip
    log, summarise and list: all in a process where ``import ml_metadata`` fails, on a store
    created and written natively (the plain-pip install has no ml-metadata at all)."""
    store = f"sqlite:///{tmp_path / 'mlmd.sqlite'}"
    summary = f"sqlite:///{tmp_path / 'summary.sqlite'}"
    commands = [
        ["simulate", "--store", store, "--pipelines", "6", "--days", "40", "--seed", "3", "--quiet"],
        ["analyze", "--store", store, "--json"],
        ["analyze", "--store", store, "--json", "--reader", "mlmd-api"],
        ["replay", "--store", store, "--json"],
        ["train-predictor", "--store", store, "--out", str(tmp_path / "predictor.npz")],
        ["override", "force-run", "--store", store, "--dag", "pipeline_0001", "--by", "alice", "--reason", "test"],
        ["decisions", "--store", store, "--dag", "pipeline_0001", "--json"],
        ["summarize", "--store", store, "--summary", summary],
        ["show", "--store", store, "--json"],
    ]
    probe = (
        "import json, sys, io, contextlib\n"
        "sys.modules['ml_metadata'] = None  # any import of it now raises ImportError\n"
        "from airflow_graphlets.cli import main\n"
        f"for args in {commands!r}:\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out):\n"
        "        code = main(args)\n"
        "    print(json.dumps([args[0], code, out.getvalue()[-20000:]]))\n"
        "print(json.dumps(sorted(m for m, module in sys.modules.items()\n"
        "                        if m.startswith('ml_metadata') and module is not None)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("[")]
    results = {command: (code, output) for command, code, output in lines[:-1]}
    assert {command: code for command, (code, _) in results.items()} == {args[0]: 0 for args in commands}
    bulk, api = (json.loads(output) for output in _analyze_outputs(lines))
    assert (bulk["reader"], api["reader"]) == ("bulk", "mlmd-api")
    assert bulk["totals"] == api["totals"] and bulk["totals"]["graphlets"] > 0
    assert json.loads(results["replay"][1])["policies"][0]["decided"] > 0
    assert "force-run" in results["override"][1]
    assert lines[-1] == []


def _analyze_outputs(lines):
    return [output for command, _, output in lines[:-1] if command == "analyze"]
