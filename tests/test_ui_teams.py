"""Airflow's multi-team mode: the Graphlets pages and overrides keep each team to its own DAGs
(issue 22, item 12). A real API server in multi-team mode, two teams owning one DAG bundle each,
users of each team signed in through Airflow's login form in Chromium."""

from __future__ import annotations

import json
import os

import pytest
import sqlalchemy as sa
from support.airflow_services import airflow_cli, api_server, free_port, summarize
from test_ui_browser import browser, signed_in  # noqa: F401 - the browser fixture

from airflow_graphlets.prune.overrides import read_overrides
from airflow_graphlets.simulate.run import simulate
from airflow_graphlets.store.uri import parse_store_uri

pytestmark = pytest.mark.airflow
SECRET = "graphlets-teams-test-secret"
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw"}  # alice: op of team_a; bob: op of team_b
DAG_FILE = '''
from datetime import datetime
from airflow.sdk import dag, task

@dag(dag_id="{dag_id}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False)
def pipeline():
    @task
    def train():
        return 1
    train()

pipeline()
'''


@pytest.fixture(scope="module")
def teams(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("teams")
    bundles = []
    for team in ("team_a", "team_b"):
        folder = tmp / f"dags_{team}"
        folder.mkdir()
        (folder / f"{team}_pipeline.py").write_text(DAG_FILE.format(dag_id=f"{team}_pipeline"))
        bundles.append({"name": f"bundle_{team}", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                        "kwargs": {"path": str(folder)}, "team_name": team})
    store_uri = f"sqlite:///{tmp}/mlmd.sqlite"
    config = parse_store_uri(store_uri)
    simulate(config, pipelines=2, days=10, seed=3)
    engine = sa.create_engine(config.sqlalchemy_url())
    with engine.begin() as conn:  # the two simulated pipelines become the two teams' DAGs
        names = sorted(name for (name,) in conn.execute(sa.text(
            "SELECT c.name FROM Context c JOIN Type t ON t.id = c.type_id WHERE t.name = 'pipeline'")))
        assert len(names) == 2
        for old, team in zip(names, ("team_a", "team_b")):
            conn.execute(sa.text("UPDATE Context SET name = :new WHERE name = :old"),
                         {"new": f"{team}_pipeline", "old": old})
    engine.dispose()
    passwords = tmp / "passwords.json"
    passwords.write_text(json.dumps(PASSWORDS))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "AIRFLOW_HOME": str(tmp / "home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__MULTI_TEAM": "True",
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
        "AIRFLOW_CONN_MLMD_DEFAULT": store_uri,
        "AIRFLOW__GRAPHLETS__SUMMARY_URI": f"sqlite:///{tmp}/summary.sqlite",
        "AIRFLOW__GRAPHLETS__SPOOL_DIR": str(tmp / "spool"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "alice:op:team_a,bob:op:team_b",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__SECRET_KEY": SECRET, "AIRFLOW__API_AUTH__JWT_SECRET": SECRET + "-jwt",
        "GLOG_minloglevel": "2",
    })
    for args in (["db", "migrate"], ["teams", "create", "team_a"], ["teams", "create", "team_b"],
                 ["dags", "reserialize"]):
        airflow_cli(env, *args)
    summarize(env)
    base = f"http://127.0.0.1:{port}"
    with api_server(env, port, tmp / "api-server.log", f"{base}/api/v2/monitor/health"):
        yield {"base": base, "config": config, "passwords": PASSWORDS}


def _page(user_page, url: str) -> tuple[int, str]:
    response = user_page.request.get(url)
    return response.status, response.text()


def test_each_team_reads_only_its_own_dags_graphlets(teams, browser):  # noqa: F811
    base = teams["base"]
    for user, own, other in (("alice", "team_a_pipeline", "team_b_pipeline"),
                             ("bob", "team_b_pipeline", "team_a_pipeline")):
        page = signed_in(browser, teams, user)
        status, _ = _page(page, f"{base}/graphlets/pipeline?dag={own}")
        assert status == 200
        status, text = _page(page, f"{base}/graphlets/pipeline?dag={other}")
        assert status == 403 and "may not read" in text
        status, _ = _page(page, f"{base}/graphlets/skips?dag={other}")
        assert status == 403
        page.goto(f"{base}/graphlets/")
        overview = page.inner_text("body")
        assert own in overview and other not in overview
        page.context.close()


def test_a_teams_editor_overrides_only_its_own_teams_gates(teams, browser):  # noqa: F811
    base = teams["base"]
    alice = signed_in(browser, teams, "alice")
    alice.goto(f"{base}/graphlets/skips?dag=team_a_pipeline")
    token = alice.locator("input[name=csrf]").first.get_attribute("value")
    url = f"{base}/graphlets/skips/override"
    refused = alice.request.post(url, form={"dag": "team_b_pipeline", "action": "never-skip", "csrf": token},
                                 max_redirects=0)
    assert refused.status == 403 and "needs edit permission" in refused.text()
    made = alice.request.post(url, form={"dag": "team_a_pipeline", "action": "never-skip", "csrf": token},
                              max_redirects=0)
    assert made.status == 303
    alice.context.close()
    assert [o.by for o in read_overrides(teams["config"], "team_a_pipeline")] == ["alice"]
    assert read_overrides(teams["config"], "team_b_pipeline") == []
