"""The Graphlets pages on a paper-scale store: first paint in Chromium, and the summary's refresh.

Writes (once; kept in ``benchmarks/results/``) a paper-scale SQLite store (3,000 pipelines over
120 days, about 450,000 graphlets) with ``graphlets simulate``, summarises it with ``graphlets
summarize`` (timed), starts a real Airflow API server on it, signs in through Airflow's login in
headless Chromium and prints each page's first contentful paint (the browser's own measure),
the first time a page is asked for (nothing cached) and again. Target: the overview's first
paint <= 1 s.

Run: ``make bench-ui`` or ``.venv/bin/python benchmarks/ui_first_paint.py [--pipelines N] [--days D]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from support.airflow_services import free_port  # noqa: E402
from support.browser import launch  # noqa: E402

BIN = os.path.dirname(sys.executable)
PAGES = (
    ("overview", "/graphlets/"),
    ("overview, one DAG", "/graphlets/?dag=ct_pipeline_7"),
    ("overview, 30 days", "/graphlets/?from=2026-02-01&to=2026-03-02"),
    ("overview, page 40 of DAGs", "/graphlets/?page=40"),
    ("pipeline view", "/graphlets/pipeline?dag=ct_pipeline_7"),
    ("skip log index", "/graphlets/skips"),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipelines", type=int, default=3000)
    parser.add_argument("--days", type=int, default=120)
    args = parser.parse_args()
    results = os.path.join(HERE, "results")
    os.makedirs(results, exist_ok=True)
    store = os.path.join(results, f"ui-store-{args.pipelines}x{args.days}.sqlite")
    if not os.path.exists(store):
        began = time.perf_counter()
        subprocess.run([os.path.join(BIN, "graphlets"), "simulate", "--store", f"sqlite:///{store}", "--pipelines",
                        str(args.pipelines), "--days", str(args.days), "--seed", "0", "--quiet"], check=True)
        print(f"wrote the store in {time.perf_counter() - began:.0f} s: {store}")
    with tempfile.TemporaryDirectory(dir=results) as tmp:
        summary = f"sqlite:///{tmp}/summary.sqlite"
        began = time.perf_counter()
        done = subprocess.run([os.path.join(BIN, "graphlets"), "summarize", "--store", f"sqlite:///{store}",
                               "--summary", summary], check=True, capture_output=True, text=True)
        print(done.stdout.strip())
        print(f"graphlets summarize, whole command: {time.perf_counter() - began:.1f} s")
        _measure(store, summary, tmp)
    return 0


def _measure(store: str, summary: str, tmp: str) -> None:
    from playwright.sync_api import sync_playwright

    port = free_port()
    home = os.path.join(tmp, "airflow")
    with open(os.path.join(tmp, "passwords.json"), "w") as handle:
        json.dump({"admin": "admin-pw"}, handle)
    env = {**os.environ, "AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": os.path.join(tmp, "passwords.json"),
           "AIRFLOW_CONN_MLMD_DEFAULT": f"sqlite:///{store}", "AIRFLOW__GRAPHLETS__SUMMARY_URI": summary,
           # The summary was just made: no background refresh competes with the measure.
           "AIRFLOW__GRAPHLETS__SUMMARY_MAX_AGE_SECONDS": "86400", "GLOG_minloglevel": "1"}
    subprocess.run([os.path.join(BIN, "airflow"), "db", "migrate"], env=env, check=True, capture_output=True)
    log = open(os.path.join(tmp, "api-server.log"), "w")
    server = subprocess.Popen([os.path.join(BIN, "airflow"), "api-server", "--port", str(port)], env=env, stdout=log,
                              stderr=log, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=5)
                break
            except OSError:
                time.sleep(1)
        with sync_playwright() as playwright:
            browser = launch(playwright)
            page = browser.new_context().new_page()
            page.goto(f"{base}/auth/login?next=/")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", "admin-pw")
            page.click("button:has-text('Sign in')")
            page.wait_for_url(f"{base}/")
            print(f"\n{'page':<30}{'first paint, cold':>20}{'again':>10}{'HTML bytes':>14}")
            for name, path in PAGES:
                cold = _first_paint(page, base + path)
                warm = _first_paint(page, base + path)
                size = len(page.content().encode())
                print(f"{name:<30}{cold:>17.0f} ms{warm:>7.0f} ms{size:>14,}")
            browser.close()
        print("target: overview first paint <= 1000 ms on SQLite with ~450,000 graphlets")
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def _first_paint(page, url: str) -> float:
    page.goto(url)
    page.wait_for_load_state("load")
    return page.evaluate(
        "() => { const p = performance.getEntriesByName('first-contentful-paint')[0];"
        " return p ? p.startTime : performance.getEntriesByType('navigation')[0].responseEnd; }")


if __name__ == "__main__":
    sys.exit(main())
