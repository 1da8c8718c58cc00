#!/usr/bin/env bash
# `make demo`: run the continuous-training pipelines of dags/ with real Airflow 3 (API server,
# scheduler with the LocalExecutor, DAG processor) on the embedded default (SQLite for Airflow's
# metadata and for the MLMD store), in two phases:
#   1. learning: GRAPHLETS_DEMO_LEARNING_DAYS logical dates (default 6) in which every gate trains
#      (no pipeline has the 5 graphlets of history its gate needs to skip) and logs what it saw;
#   2. gated: graphlets train-predictor tries to train a predictor on that history (with so few
#      runs it refuses: no threshold can be shown to keep the pushes), so the gates decide with
#      the prior shipped with the package, calibrated on each pipeline's own outcomes, for the
#      following days (up to GRAPHLETS_DEMO_DAYS, default 12).
# Then it shows the model graphlets airflow-graphlets recorded, the skip log, and what the gates
# saved and kept (scripts/demo_gate_report.py: skipped candidates are trained again offline and
# evaluated against the model deployed then). GRAPHLETS_DEMO_DAYS=21 gives three weeks.
# The demo owns its AIRFLOW_HOME (default .airflow in the repository) and starts it afresh each time.
set -euo pipefail
cd "$(dirname "$0")/.."
export AIRFLOW_HOME="${AIRFLOW_HOME:-$PWD/.airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$PWD/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export GLOG_minloglevel=1
DAYS="${GRAPHLETS_DEMO_DAYS:-12}"
LEARNING="${GRAPHLETS_DEMO_LEARNING_DAYS:-6}"
START=2026-01-01
AIRFLOW=.venv/bin/airflow
GRAPHLETS=.venv/bin/graphlets
STORE="$AIRFLOW_HOME/graphlets/mlmd.sqlite"
began=$(date +%s)

if [ "$LEARNING" -ge "$DAYS" ]; then
  echo "GRAPHLETS_DEMO_DAYS ($DAYS) must exceed GRAPHLETS_DEMO_LEARNING_DAYS ($LEARNING): the gated phase needs days." >&2
  exit 2
fi
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

GATED_START=$(date -u -d "$START + $LEARNING days" +%Y-%m-%d)
# Between the phases: write what waits in the spool, then train the gates' push predictor on the
# learning phase's history (graphlets train-predictor; docs/prune.md).
TRAIN="$GRAPHLETS spool replay --timeout 60 > /dev/null; $GRAPHLETS train-predictor --store sqlite:///$STORE \
  || echo '   (so the gates go on with the prior predictor, calibrated on the outcomes of each pipeline)'"
echo "-- learning phase: $LEARNING days in which every gate trains (too little history to skip), then the"
echo "   gated phase: $((DAYS - LEARNING)) days from $GATED_START, each gate deciding (scripts/ct_backfill.py)"
.venv/bin/python scripts/ct_backfill.py --start "$START" --days "$DAYS" --pause "$GATED_START" --then "$TRAIN"
$GRAPHLETS spool replay --timeout 60 > /dev/null  # whatever the flusher has not written yet

echo
echo "-- recorded into the MLMD store $STORE:"
$GRAPHLETS spool status
echo
echo "-- model graphlets of those runs (graphlets analyze; docs/graphlets.md):"
$GRAPHLETS analyze --store "sqlite:///$STORE" --top 5 --html "$AIRFLOW_HOME/graphlets-report.html"
echo
echo "-- the skip log of one pipeline's gated days (graphlets decisions --dag ct_sea_logistic):"
$GRAPHLETS decisions --store "sqlite:///$STORE" --dag ct_sea_logistic --since "$GATED_START" | head -12
echo
echo "-- the summary the Graphlets pages of the Airflow UI read (graphlets summarize; docs/ui.md):"
$GRAPHLETS summarize --store "sqlite:///$STORE"
echo
echo "-- what the gates did in the gated days (scripts/demo_gate_report.py: each skipped run's candidate"
echo "   trained again and evaluated against the model deployed then):"
.venv/bin/python scripts/demo_gate_report.py --store "sqlite:///$STORE" --since "$GATED_START"
echo
echo "HTML report with the figures: $AIRFLOW_HOME/graphlets-report.html"
echo "Graphlets pages: AIRFLOW_HOME=$AIRFLOW_HOME .venv/bin/airflow api-server --port 8080, then"
echo "  http://localhost:8080/plugin/graphlets (Plugins > Graphlets in Airflow's menu)"
echo "Serving directories of the pushed models: $AIRFLOW_HOME/ct-data/<dag_id>/serving/"
echo "demo finished in $(( $(date +%s) - began )) s"
