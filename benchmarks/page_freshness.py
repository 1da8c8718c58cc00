"""How soon a finished run shows on the Graphlets pages, and what the pages' refreshes cost the
MLMD database (issue 23), under a real Airflow with the plugin's default settings.

A real deployment on this machine (API server, scheduler and DAG processor, LocalExecutor,
``tests/dags/graphlets_test_pipeline.py``): every [graphlets] setting is its default (summary
maximum age 20 s, the flusher's defaults), the summary in its default place. A reader keeps the
pipeline page open, reloading it every ``--poll`` seconds as a person watching it would (the
page also reloads itself every 4 s while a newer summary is being made). Runs are triggered one
at a time, each a random 0-25 s after the one before showed, so they land at every phase of
the refresh cycle. Per run: seconds from the pusher's end (Airflow's end date of the task) to
the first page that shows the run's graphlet finished (pushed or not pushed).

With ``--load`` (PostgreSQL store only), three minutes of PostgreSQL's own statistics for the
MLMD database (pg_stat_database, pg_stat_user_tables): a minute with the page open and no runs,
a minute of runs with the page open, a minute of the same runs with no page open. Their
difference is what the refreshes cost: transactions, table and index scans started, rows read.

Run: ``make bench-freshness`` (about 10 minutes).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import httpx  # noqa: E402
import psycopg2  # noqa: E402
from support.airflow_env import AirflowEnv  # noqa: E402
from support.airflow_services import AirflowServices  # noqa: E402
from support.databases import PG, create_store_uri, drop_store  # noqa: E402

DAG = "graphlets_test_pipeline"
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


class PageWatcher(threading.Thread):
    """Reloads the pipeline page every ``poll`` seconds (sooner when the page asks to reload
    itself); remembers when each span's graphlet was first shown finished."""

    def __init__(self, base: str, token: str, poll: float) -> None:
        super().__init__(daemon=True)
        self.url, self.poll = f"{base}/graphlets/pipeline", poll
        self.headers = {"Authorization": f"Bearer {token}"}
        self.first_seen: dict[int, float] = {}
        self.pages = 0
        self.active = threading.Event()
        self.stopped = threading.Event()

    def run(self) -> None:
        with httpx.Client(headers=self.headers, timeout=60) as client:
            while not self.stopped.is_set():
                if not self.active.is_set():
                    time.sleep(0.2)
                    continue
                text = client.get(self.url, params={"dag": DAG}).text
                seen = time.time()
                self.pages += 1
                for span in finished_spans(text):
                    self.first_seen.setdefault(span, seen)
                reload_in = re.search(r'http-equiv="refresh" content="(\d+)"', text)
                time.sleep(min(self.poll, float(reload_in.group(1))) if reload_in else self.poll)


def finished_spans(page: str) -> set[int]:
    """The last spans of the graphlets the page shows pushed or not pushed (the test DAG's
    trainer of day d reads spans up to d)."""
    found = set()
    for row in re.findall(r"<tr>(.*?)</tr>", page, flags=re.S):
        status = re.search(r'class="status-(pushed|not_pushed)"', row)
        spans = re.search(r"(\d+)–(\d+) \(\d+\)", row)
        if status and spans:
            found.add(int(spans.group(2)))
    return found


def pusher_end(services: AirflowServices, run_id: str) -> float:
    found = services._get(f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/pusher")
    return datetime.fromisoformat(found["end_date"]).timestamp()


def pg_load(database: str) -> dict[str, int]:
    """PostgreSQL's running totals for ``database``: transactions, scans started, rows read."""
    conn = psycopg2.connect(dbname=database, **PG)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute("SELECT xact_commit + xact_rollback, tup_returned + tup_fetched FROM pg_stat_database "
                           "WHERE datname = %s", (database,))
            transactions, rows = cursor.fetchone()
            cursor.execute("SELECT COALESCE(SUM(seq_scan + COALESCE(idx_scan, 0)), 0) FROM pg_stat_user_tables")
            scans = cursor.fetchone()[0]
    finally:
        conn.close()
    return {"transactions": int(transactions), "scans": int(scans), "rows": int(rows)}


def run_once(services: AirflowServices, day: int) -> tuple[str, float]:
    run_id = f"fresh-{day}"
    services.trigger(DAG, run_id, (START + timedelta(days=day)).isoformat())
    assert services.wait_for_run(DAG, run_id, timeout=300) == "success", f"run {run_id} failed"
    return run_id, pusher_end(services, run_id)


def measure_freshness(services: AirflowServices, watcher: PageWatcher, runs: int, rng: random.Random) -> list[float]:
    delays = []
    for n in range(runs):
        day = 10 + n
        _, ended = run_once(services, day)
        deadline = time.time() + 180
        while day not in watcher.first_seen and time.time() < deadline:
            time.sleep(0.2)
        if day not in watcher.first_seen:
            raise SystemExit(f"run of day {day} not on the page 180 s after its pusher ended")
        delays.append(watcher.first_seen[day] - ended)
        print(f"run {n + 1}/{runs}: on the page {delays[-1]:.1f} s after its pusher ended", flush=True)
        time.sleep(rng.uniform(0, 25))
    return delays


def measure_load(services: AirflowServices, watcher: PageWatcher, database: str, first_day: int) -> None:
    """Three one-minute windows; the pages' cost is the first, and the second minus the third."""
    def window(label: str, page_open: bool, with_runs: bool, day: int) -> tuple[dict[str, int], int]:
        (watcher.active.set if page_open else watcher.active.clear)()
        pages_before = watcher.pages
        time.sleep(3)  # let a refresh in flight finish into the window before
        before, began = pg_load(database), time.time()
        while time.time() - began < 60:
            if with_runs:
                run_once(services, day)
                day += 1
            else:
                time.sleep(1)
        after = pg_load(database)
        minutes = (time.time() - began) / 60
        rates = {k: round((after[k] - before[k]) / minutes) for k in after}
        print(f"{label}: per minute {rates['transactions']:,} transactions, {rates['scans']:,} scans, "
              f"{rates['rows']:,} rows read ({watcher.pages - pages_before} page loads)", flush=True)
        return rates, day

    idle, day = window("page open, no runs", True, False, first_day)
    busy, day = window("page open, runs", True, True, day)
    quiet, _ = window("no page, runs", False, True, day)
    print("refreshes' cost per minute: " + ", ".join(
        f"{name} {idle[name]:,} idle / {busy[name] - quiet[name]:,} while runs land"
        for name in ("transactions", "scans", "rows")), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="sqlite", choices=("sqlite", "postgresql"),
                        help="the MLMD store's database (sqlite is the default store)")
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--poll", type=float, default=5.0, help="seconds between a reader's reloads")
    parser.add_argument("--load", action="store_true", help="also measure the refreshes' load (postgresql)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.load and args.backend != "postgresql":
        parser.error("--load reads PostgreSQL's statistics: use --backend postgresql")
    with tempfile.TemporaryDirectory() as home:
        uri = create_store_uri(args.backend, home)
        airflow = AirflowEnv(home=home)
        airflow.env.pop("AIRFLOW__GRAPHLETS__FLUSHER_IDLE_SECONDS")  # the tests' setting, not the default
        services = AirflowServices(airflow, store_uri=uri, spool_dir=os.path.join(home, "spool"),
                                   overrides={"AIRFLOW__API__SECRET_KEY": "graphlets-freshness-benchmark"})
        services.start()
        watcher = PageWatcher(f"http://127.0.0.1:{services.port}", services._token(), args.poll)
        try:
            run_once(services, 9)  # the pipeline's first run: the summary starts with it
            watcher.start()
            watcher.active.set()
            delays = measure_freshness(services, watcher, args.runs, random.Random(args.seed))
            print(f"\n{args.backend} store, default settings, reader reloading every {args.poll:g} s: a finished run "
                  f"on the page after median {statistics.median(delays):.1f} s, max {max(delays):.1f} s "
                  f"(goal <= 30 s), {len(delays)} runs", flush=True)
            if args.load:
                measure_load(services, watcher, uri.rsplit("/", 1)[1], 10 + args.runs)
        finally:
            watcher.stopped.set()
            services.stop()
            drop_store(uri)
    return 0


if __name__ == "__main__":
    sys.exit(main())
