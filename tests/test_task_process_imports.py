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
