"""Keep the graphlet gates' push predictor learning from new outcomes.

Every day this DAG trains the predictor again on every finished run in the MLMD store (the
`[graphlets]` connection) and replaces `[graphlets] predictor_path` atomically: gates deciding
meanwhile read the old predictor or the new one, and each decision names the version it used
(`graphlets_policy_version` in the skip log). With too little history yet (fewer than 20
finished runs, or only one outcome), the task skips with the reason and the gates go on
training every run. Copy it and change the schedule to suit how fast your pipelines change.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag, task


@dag(
    dag_id="graphlets_maintenance",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=5)},
    tags=["graphlets", "maintenance"],
    doc_md=__doc__,
)
def graphlets_maintenance():
    @task
    def retrain_push_predictor() -> dict:
        """Train on the store's history; skip (saying why) while it is too short."""
        from airflow.sdk.exceptions import AirflowSkipException
        from airflow_graphlets.airflow_config import load_settings, resolve_store
        from airflow_graphlets.errors import NotEnoughHistoryError
        from airflow_graphlets.prune.retrain import retrain

        settings = load_settings()
        try:
            done = retrain(resolve_store(settings), settings.predictor_path)
        except NotEnoughHistoryError as err:
            raise AirflowSkipException(f"not retrained: {err}") from None
        print(f"{done.predictor.version} in {done.path} (replaces {done.replaced or 'nothing'}); trained on "
              f"{done.predictor.trained_rows} runs, threshold {done.predictor.threshold:.3g}")
        return {"version": done.predictor.version, "replaced": done.replaced, "rows": done.predictor.trained_rows}

    retrain_push_predictor()


graphlets_maintenance()
