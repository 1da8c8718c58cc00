# airflow-graphlets: `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export GLOG_minloglevel ?= 1

.PHONY: env services browser test demo bench bench-graphlets bench-simulate bench-gate bench-ui bench-writers bench-linearity bench-prune bench-summary bench-freshness screenshots clean constraints

# uv comes from PyPI when the machine has none.
.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv

# Bytecode is compiled at install: where PYTHONDONTWRITEBYTECODE is set (as on these machines),
# every task process, flusher and test worker would otherwise compile Airflow, SQLAlchemy and
# MLMD anew (the suite ran in 15 min without, 12 min with).
$(VENV)/.installed: pyproject.toml constraints.txt overrides.txt | $(UV)
	test -x $(PY) || $(UV) venv --quiet --python $(PYTHON) $(VENV)
	$(UV) pip install --quiet --compile-bytecode --python $(PY) -e '.[test,examples,production,mlmd]' -c constraints.txt --override overrides.txt
	@# The editable build leaves setuptools' egg-info in plugin/, which the editable install puts on
	@# sys.path: Airflow would then find the plugin's entry point twice and list an import error.
	rm -rf plugin/*.egg-info
	touch $@

env: $(VENV)/.installed

services:
	./scripts/services.sh

# Debian's Chromium (the UI's browser tests) and docker-compose (parses docker/compose.yaml).
browser:
	./scripts/apt_packages.sh

test: env services browser
	$(VENV)/bin/pytest -q --durations=15 -n 2 --dist loadfile

demo: env
	./scripts/demo.sh

bench: env services
	$(PY) benchmarks/recorder_overhead.py

# Re-pin constraints.txt to what is installed now (names==versions only, no download addresses).
constraints: env
	$(UV) pip freeze --python $(PY) --exclude-editable | grep -v '^-e ' > constraints.txt

clean:
	rm -rf $(VENV) .tools .airflow .pytest_cache
bench-graphlets: env services
	$(PY) benchmarks/graphlet_extraction.py
bench-simulate: env services
	$(PY) benchmarks/simulate_throughput.py
bench-gate: env services
	$(PY) benchmarks/gate_latency.py
bench-ui: env services browser
	$(PY) benchmarks/ui_first_paint.py
bench-writers: env services
	$(PY) benchmarks/concurrent_writers.py
bench-linearity: env services
	$(PY) benchmarks/extraction_linearity.py
# Incremental summary refreshes against a full summary (1,000-pipeline and paper-scale stores).
bench-summary: env services
	$(PY) benchmarks/summary_refresh.py
# A finished run on the pages after its pusher ends, and the refreshes' load on the MLMD database
# (a real Airflow with default settings; SQLite store, then PostgreSQL with the load windows).
bench-freshness: env services
	$(PY) benchmarks/page_freshness.py --backend sqlite
	$(PY) benchmarks/page_freshness.py --backend postgresql --load
# The push predictor on real training outcomes (docs/prune.md): the report seeds, about 15 min;
# then on the paper-profile simulator, recorded and closed loop (about 5 min).
bench-prune: env
	$(PY) benchmarks/prune_real_outcomes.py --json benchmarks/results/prune-real-outcomes.json
	$(PY) benchmarks/prune_simulator.py --json benchmarks/results/prune-simulator.json

# The screenshots in docs/ui/, taken by the browser tests.
screenshots: env services browser
	mkdir -p docs/ui
	GRAPHLETS_SCREENSHOTS=$(CURDIR)/docs/ui $(VENV)/bin/pytest -q tests/test_ui_browser.py
