#!/usr/bin/env bash
# `make demo`: run the quickstart pipeline for a few days with real Airflow 3 on SQLite (Airflow's
# metadata DB and the MLMD store), then show what airflow-graphlets recorded.
set -euo pipefail
cd "$(dirname "$0")/.."
export AIRFLOW_HOME="${AIRFLOW_HOME:-$PWD/.airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$PWD/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export GRAPHLETS_DEMO_DATA="$AIRFLOW_HOME/demo-data"
export GLOG_minloglevel=1
AIRFLOW=.venv/bin/airflow
STORE="$AIRFLOW_HOME/graphlets/mlmd.sqlite"

echo "== airflow-graphlets demo (AIRFLOW_HOME=$AIRFLOW_HOME)"
echo "-- preparing Airflow's metadata database"
mkdir -p "$AIRFLOW_HOME"
$AIRFLOW db migrate > "$AIRFLOW_HOME/migrate.log" 2>&1 || { cat "$AIRFLOW_HOME/migrate.log"; exit 1; }
for day in 01 02 03 04 05; do
  echo "-- running graphlets_quickstart for 2026-01-$day"
  $AIRFLOW dags test graphlets_quickstart "2026-01-${day}T00:00:00+00:00" > "$AIRFLOW_HOME/demo-run-$day.log" 2>&1 \
    || { tail -40 "$AIRFLOW_HOME/demo-run-$day.log"; exit 1; }
done
echo
echo "-- recorded into the MLMD store $STORE:"
.venv/bin/graphlets spool replay --timeout 60 > /dev/null  # whatever the flusher has not written yet
.venv/bin/graphlets spool status
echo
.venv/bin/graphlets show --store "sqlite:///$STORE" --dag graphlets_quickstart
echo
echo "-- model graphlets of those runs (graphlets analyze; docs/graphlets.md):"
.venv/bin/graphlets analyze --store "sqlite:///$STORE" --top 5 --html "$AIRFLOW_HOME/graphlets-report.html"
echo "HTML report with the figures: $AIRFLOW_HOME/graphlets-report.html"
