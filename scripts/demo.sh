#!/usr/bin/env bash
# `make demo`: run the continuous-training pipelines of dags/ over twelve days of logical dates
# with real Airflow 3 (API server, scheduler with the LocalExecutor, DAG processor) on the
# embedded default (SQLite for Airflow's metadata and for the MLMD store), then show the model
# graphlets airflow-graphlets recorded and where the HTML report is.
#
# GRAPHLETS_DEMO_DAYS (default 12, the release of 2026-01-11 included) sets the number of logical dates. The demo owns its
# AIRFLOW_HOME (default .airflow in the repository) and starts it afresh each time.
set -euo pipefail
cd "$(dirname "$0")/.."
export AIRFLOW_HOME="${AIRFLOW_HOME:-$PWD/.airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$PWD/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export GLOG_minloglevel=1
DAYS="${GRAPHLETS_DEMO_DAYS:-12}"
AIRFLOW=.venv/bin/airflow
GRAPHLETS=.venv/bin/graphlets
STORE="$AIRFLOW_HOME/graphlets/mlmd.sqlite"
began=$(date +%s)

echo "== airflow-graphlets demo (AIRFLOW_HOME=$AIRFLOW_HOME)"
if [ -f "$AIRFLOW_HOME/.graphlets-demo" ]; then
  # A previous demo's Airflow database, MLMD store, spans and models: start over.
  rm -rf "$AIRFLOW_HOME"
elif [ -e "$AIRFLOW_HOME/airflow.db" ]; then
  echo "$AIRFLOW_HOME holds an Airflow database the demo did not make; point AIRFLOW_HOME elsewhere." >&2
  exit 2
fi
mkdir -p "$AIRFLOW_HOME"
touch "$AIRFLOW_HOME/.graphlets-demo"

echo "-- preparing Airflow's metadata database"
$AIRFLOW db migrate > "$AIRFLOW_HOME/migrate.log" 2>&1 || { cat "$AIRFLOW_HOME/migrate.log"; exit 1; }

echo "-- backfilling the continuous-training DAGs over $DAYS days (scripts/ct_backfill.py; logs in $AIRFLOW_HOME)"
.venv/bin/python scripts/ct_backfill.py --days "$DAYS"

echo
echo "-- recorded into the MLMD store $STORE:"
$GRAPHLETS spool replay --timeout 60 > /dev/null  # whatever the flusher has not written yet
$GRAPHLETS spool status
echo
echo "-- model graphlets of those runs (graphlets analyze; docs/graphlets.md):"
$GRAPHLETS analyze --store "sqlite:///$STORE" --top 5 --html "$AIRFLOW_HOME/graphlets-report.html"
echo
echo "-- every run's gate decided to train: no push predictor existed yet. Train one on this history"
echo "   (graphlets train-predictor; from now on the gates skip the runs it expects not to push):"
$GRAPHLETS train-predictor --store "sqlite:///$STORE"
$GRAPHLETS decisions --store "sqlite:///$STORE" --dag ct_sea_logistic --since "$(date -u +%Y-%m-%d)" | head -4
echo
echo "-- the summary the Graphlets pages of the Airflow UI read (graphlets summarize; docs/ui.md):"
$GRAPHLETS summarize --store "sqlite:///$STORE"
echo
echo "HTML report with the figures: $AIRFLOW_HOME/graphlets-report.html"
echo "Graphlets pages: AIRFLOW_HOME=$AIRFLOW_HOME .venv/bin/airflow api-server --port 8080, then"
echo "  http://localhost:8080/plugin/graphlets (Plugins > Graphlets in Airflow's menu)"
echo "Serving directories of the pushed models: $AIRFLOW_HOME/ct-data/<dag_id>/serving/"
echo "demo finished in $(( $(date +%s) - began )) s"
