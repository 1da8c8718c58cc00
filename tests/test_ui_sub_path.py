"""The Graphlets pages when Airflow is served under a sub-path (`[api] base_url`, issue 23): the
plugin's navigation opens them, and every link and form on them stays under the sub-path."""

from __future__ import annotations

import json
import os
import re

import pytest
from support.airflow_services import airflow_cli, api_server, free_port, summarize
from test_ui_browser import browser  # noqa: F401 - the browser fixture

from airflow_graphlets.simulate.run import simulate
from airflow_graphlets.store.uri import parse_store_uri

pytestmark = pytest.mark.airflow
SECRET = "graphlets-sub-path-secret"
PREFIX = "/airflow"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sub_path")
    store_uri = f"sqlite:///{tmp}/mlmd.sqlite"
    simulate(parse_store_uri(store_uri), pipelines=3, days=10, seed=4)
    (tmp / "passwords.json").write_text(json.dumps({"admin": "admin-pw"}))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "AIRFLOW_HOME": str(tmp / "home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(tmp / "dags"),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}{PREFIX}",
        "AIRFLOW_CONN_MLMD_DEFAULT": store_uri,
        "AIRFLOW__GRAPHLETS__SUMMARY_URI": f"sqlite:///{tmp}/summary.sqlite",
        "AIRFLOW__GRAPHLETS__SPOOL_DIR": str(tmp / "spool"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(tmp / "passwords.json"),
        "AIRFLOW__API__SECRET_KEY": SECRET, "AIRFLOW__API_AUTH__JWT_SECRET": SECRET + "-jwt",
        "GLOG_minloglevel": "2",
    })
    (tmp / "dags").mkdir()
    airflow_cli(env, "db", "migrate")
    summarize(env)
    root = f"http://127.0.0.1:{port}"
    with api_server(env, port, tmp / "api-server.log", f"{root}{PREFIX}/api/v2/monitor/health"):
        yield {"root": root, "base": root + PREFIX, "log": tmp / "api-server.log"}


def test_the_pages_open_from_airflows_menu_and_keep_to_the_sub_path(served, browser):  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{served['base']}/auth/login?next={PREFIX}/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "admin-pw")
    page.click("button:has-text('Sign in')")
    page.wait_for_url(re.compile(rf".*{PREFIX}/?$"))
    page.get_by_role("button", name="Plugins").click()
    page.get_by_role("menuitem", name="Graphlets").click()
    page.get_by_role("menuitem", name="Waste overview").click()
    frame = page.frame_locator("iframe")
    frame.locator("h1").first.wait_for(timeout=60_000)
    assert "Waste overview" in frame.locator("h1").first.inner_text()
    hrefs = frame.locator("a[href], form[action]").evaluate_all(
        "nodes => nodes.map(n => n.getAttribute('href') || n.getAttribute('action'))")
    ours = [h for h in hrefs if h.startswith("/")]
    assert ours and all(h.startswith(f"{PREFIX}/") for h in ours), ours
    frame.locator("a", has_text="ct_pipeline_1").first.click()
    frame.locator("h1:has-text('ct_pipeline_1')").wait_for(timeout=30_000)
    context.close()
