"""The Graphlets pages in a real Airflow API server, driven in headless Chromium: sign in through
Airflow, find the pages in Airflow's navigation, read real numbers from a real store, overrule a
skip and see it in the skip log; no page for the unauthenticated, no override without edit
permission or from another site, and hostile names shown as text.

The store: a simulated history of four pipelines, a real DAG run whose gate skipped training
(recorded by the plugin's listener), and a pipeline whose name is markup."""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest
from airflow_graphlets.graphlets.bulk_reader import read_graphlets
from airflow_graphlets.graphlets.clock import on_clock
from airflow_graphlets.prune.dataset import feature_matrix, training_runs
from airflow_graphlets.prune.decisions import read_decisions
from airflow_graphlets.prune.overrides import read_overrides
from airflow_graphlets.prune.predictor import PushPredictor
from airflow_graphlets.prune.signals import span_drift
from airflow_graphlets.simulate.run import simulate
from airflow_graphlets.store.connect import open_store
from airflow_graphlets.store.uri import parse_store_uri
from airflow_graphlets.units import duration
from airflow_graphlets.graphlets.clock import on_clock
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb
from support.airflow_env import VENV_BIN
from support.airflow_services import AirflowServices, free_port
from support.browser import launch

pytestmark = pytest.mark.airflow
GATED = "graphlets_test_gate"
HOSTILE = '<img src=x onerror="document.title=\'pwned\'">\' OR 1=1; --'
SECRET = "graphlets-ui-test-secret"
PASSWORDS = {"admin": "admin-pw", "viewer": "viewer-pw"}


def _add_hostile_pipeline(config) -> None:
    """A pipeline named with markup and SQL, holding one finished training run."""
    store = open_store(config)
    pipeline_type = store.get_context_type("pipeline")
    trainer_type = store.put_execution_type(mlmd_pb.ExecutionType(name="hostile.Trainer"))
    context = mlmd_pb.Context(type_id=pipeline_type.id, name=HOSTILE)
    execution = mlmd_pb.Execution(type_id=trainer_type, last_known_state=mlmd_pb.Execution.COMPLETE)
    for name, value in (("start_epoch_seconds", 1767225600.0), ("end_epoch_seconds", 1767229200.0),
                        ("duration_seconds", 3600.0)):
        execution.custom_properties[name].double_value = value
    execution.custom_properties["task_id"].string_value = HOSTILE
    store.put_execution(execution, artifact_and_events=[], contexts=[context])


@pytest.fixture(scope="module")
def deployment(airflow_env, tmp_path_factory):
    """The store, and a real Airflow API server with two users serving the pages on it."""
    tmp = tmp_path_factory.mktemp("ui_browser")
    store_uri = f"sqlite:///{tmp}/mlmd.sqlite"
    config = parse_store_uri(store_uri)
    simulate(config, pipelines=4, days=20, seed=5)
    runs = training_runs(on_clock(read_graphlets(config), "logical"), span_drift(config))
    predictor = str(tmp / "predictor.npz")
    PushPredictor.fit(feature_matrix(runs), runs.pushed).save(predictor)
    runs = {}
    for day, threshold in ((1, "0"), (2, "1e6")):  # one run trains and pushes, the next is skipped
        runs[threshold] = airflow_env.run_dag(
            GATED, f"2026-02-0{day}T00:00:00+00:00", store_uri=store_uri, spool_dir=str(tmp / "spool"),
            env={"GRAPHLETS_TEST_PREDICTOR": predictor, "GRAPHLETS_TEST_THRESHOLD": threshold})
        assert runs[threshold].state == "success", runs[threshold].output[-3000:]
    trained, skipped = runs["0"], runs["1e6"]
    _add_hostile_pipeline(config)
    passwords = tmp / "passwords.json"
    passwords.write_text(json.dumps(PASSWORDS))
    port = free_port()
    env = {**airflow_env.env, "AIRFLOW_CONN_MLMD_DEFAULT": store_uri,
           "AIRFLOW__GRAPHLETS__SUMMARY_URI": f"sqlite:///{tmp}/summary.sqlite",
           "AIRFLOW__GRAPHLETS__SPOOL_DIR": str(tmp / "spool"),
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
           "AIRFLOW__API__SECRET_KEY": SECRET, "AIRFLOW__API_AUTH__JWT_SECRET": SECRET + "-jwt"}
    log = open(tmp / "api-server.log", "w")
    server = subprocess.Popen([os.path.join(VENV_BIN, "airflow"), "api-server", "--port", str(port)], env=env,
                              stdout=log, stderr=log, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        AirflowServices._wait(lambda: _status(f"{base}/api/v2/monitor/health") == 200, 120, "the API server")
        yield {"base": base, "config": config, "run_id": skipped.run_id, "trained_run_id": trained.run_id, "log": tmp / "api-server.log"}
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


def _status(url: str, **kwargs) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, **kwargs), timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def signed_in(browser, deployment, user: str):
    """A browser page signed in through Airflow's own login form."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{deployment['base']}/auth/login?next=/")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", deployment.get("passwords", PASSWORDS)[user])
    page.click("button:has-text('Sign in')")
    page.wait_for_url(f"{deployment['base']}/")
    return page


def summarised(page, deployment) -> None:
    """Wait until the pages' summary holds the store: the first visit to the overview starts it
    and the page reloads itself until it is there (a test run alone may be that first visit)."""
    page.goto(f"{deployment['base']}/graphlets/")
    page.locator("[data-figure=graphlets]").filter(has_not_text=re.compile(r"^0$")).wait_for(timeout=90_000)


def figure(frame, name: str) -> str:
    return frame.locator(f"[data-figure={name}]").first.inner_text().strip()


def shoot(page, name: str) -> None:
    """Keep a screenshot for docs/ when GRAPHLETS_SCREENSHOTS names a folder (make screenshots)."""
    folder = os.environ.get("GRAPHLETS_SCREENSHOTS")
    if folder:
        page.screenshot(path=os.path.join(folder, f"{name}.png"), full_page=True)


def test_an_unauthenticated_request_is_refused(deployment, browser):
    base = deployment["base"]
    assert _status(f"{base}/graphlets/") == 401
    assert _status(f"{base}/graphlets/skips?dag={GATED}") == 401
    form = urllib.parse.urlencode({"dag": GATED, "action": "never-skip"}).encode()
    assert _status(f"{base}/graphlets/skips/override", data=form, method="POST") == 401
    assert _status(f"{base}/graphlets/", headers={"Cookie": "_token=forged"}) in (401, 403)
    page = browser.new_page()
    page.goto(f"{base}/graphlets/")
    assert "Sign in to Airflow first" in page.inner_text("h1")
    page.close()
    assert read_overrides(deployment["config"], GATED) == []


def test_the_overview_is_in_airflows_navigation_and_shows_the_stores_numbers(deployment, browser):
    page = signed_in(browser, deployment, "admin")
    page.get_by_role("button", name="Plugins").click()
    page.get_by_role("menuitem", name="Graphlets").click()
    page.get_by_role("menuitem", name="Waste overview").click()
    page.wait_for_url(re.compile(r".*/plugin/graphlets$"))
    frame = page.frame_locator("iframe")
    # The first visit finds no summary, starts one and reloads until it is there.
    frame.locator("[data-figure=graphlets]").filter(has_not_text=re.compile(r"^0$")).wait_for(timeout=90_000)
    extraction = on_clock(read_graphlets(deployment["config"]), "logical")  # the pages' clock
    e = extraction.executions
    wasted = e.duration[(e.outcome == 1) & (e.pipeline >= 0)].sum()
    assert figure(frame, "graphlets") == f"{len(extraction.graphlets):,}"
    assert figure(frame, "wasted") == duration(wasted)
    assert figure(frame, "dags") == f"{len(extraction.pipelines):,}"
    saved = read_decisions(deployment["config"], GATED)[-1].features["expected_cost"]
    assert figure(frame, "saved") == duration(saved)
    assert frame.locator("svg.chart g.bar").count() >= 20
    shoot(page, "overview")
    # Filtered to one DAG, the figures are that DAG's.
    frame.locator("select[name=dag]").select_option("ct_pipeline_1")
    frame.locator("button:has-text('Show')").click()
    frame.locator("h1:has-text('ct_pipeline_1')").wait_for()
    mine = extraction.graphlets.pipeline == extraction.pipelines.index("ct_pipeline_1")
    assert figure(frame, "graphlets") == f"{int(mine.sum()):,}"
    page.context.close()


def test_markup_in_names_is_shown_as_text(deployment, browser):
    page = signed_in(browser, deployment, "admin")
    summarised(page, deployment)
    link = page.get_by_role("link", name=HOSTILE, exact=True)
    assert link.count() == 1
    assert page.locator("main img").count() == 0 and page.title() != "pwned"
    link.click()
    page.locator("h1").filter(has_text="Pipeline").wait_for()
    assert page.inner_text("h1") == f"Pipeline {HOSTILE}"
    assert page.locator("main img").count() == 0 and page.title() != "pwned"
    page.context.close()


def test_the_pipeline_view_shows_the_timeline_cadence_and_skips(deployment, browser):
    page = signed_in(browser, deployment, "admin")
    extraction = on_clock(read_graphlets(deployment["config"]), "logical")  # the pages' clock
    g = extraction.graphlets
    index = extraction.pipelines.index("ct_pipeline_2")
    pushes = np.sort(g.pushed_at[(g.pipeline == index) & g.pushed])
    summarised(page, deployment)
    page.goto(f"{deployment['base']}/graphlets/pipeline?dag=ct_pipeline_2")
    assert figure(page, "graphlets") == str(int((g.pipeline == index).sum()))
    assert figure(page, "pushes") == str(len(pushes))
    assert figure(page, "cadence") == duration(np.median(np.diff(pushes)))
    assert page.locator("svg.timeline a.run").count() == int((g.pipeline == index).sum())
    shoot(page, "pipeline")
    page.goto(f"{deployment['base']}/graphlets/pipeline?dag={GATED}")
    assert figure(page, "skips") == "1"
    assert page.locator("svg.timeline g.skip").count() == 1
    page.context.close()


def test_the_graphlet_view_draws_the_provenance_and_links_to_task_instances(deployment, browser):
    page = signed_in(browser, deployment, "admin")
    page.goto(f"{deployment['base']}/graphlets/pipeline?dag=ct_pipeline_2")
    page.locator("#graphlets a").first.click()
    page.locator("svg.graph").wait_for()
    # Like executions of a wide window are drawn as groups ("15 × ExampleGen"): each is drawn once.
    grouped = sum(int(n) for n in page.locator("svg.graph .node.group[data-kind=execution]").evaluate_all(
        "nodes => nodes.map(n => n.getAttribute('data-members'))"))
    drawn = page.locator("svg.graph .node.execution").count() + grouped
    assert drawn == page.locator("#executions tbody tr").count() > 3
    assert page.locator("svg.graph .node.artifact").filter(has_text="PushedModel").count() <= 1
    shoot(page, "graphlet")
    # The real DAG run's graphlet links each execution to its task instance in Airflow.
    page.goto(f"{deployment['base']}/graphlets/pipeline?dag={GATED}")
    page.locator("#graphlets a").first.click()
    trainer = page.locator("#executions a", has_text="trainer")
    run_id = urllib.parse.quote(deployment["trained_run_id"], safe="")
    assert trainer.get_attribute("href") == f"/dags/{GATED}/runs/{run_id}/tasks/trainer?try_number=1"
    trainer.click()
    page.wait_for_url(re.compile(rf".*/dags/{GATED}/runs/.+/tasks/trainer.*"))
    page.get_by_text("trainer").first.wait_for()
    page.context.close()


def test_an_operator_overrules_a_skip_and_sees_it_in_the_skip_log(deployment, browser):
    page = signed_in(browser, deployment, "admin")
    summarised(page, deployment)  # the skip log lists the DAGs the summary holds
    page.goto(f"{deployment['base']}/plugin/graphlets-skips")
    frame = page.frame_locator("iframe")
    frame.get_by_role("link", name=GATED, exact=True).click()
    row = frame.locator("#decisions tbody tr").first
    assert "skip" in row.inner_text() and "< 1e+06" in row.inner_text()
    assert "new_spans=3" in row.locator(".features").inner_text()
    shoot(page, "skip-log")
    row.locator("button.overrule").click()
    frame.locator("#done").wait_for()
    # Airflow cleared the run's training branch, asked as admin with admin's own session.
    cleared = "Airflow cleared graphlet_gate, pusher, trainer"
    assert frame.locator("#done").inner_text() == f"force-run recorded by admin; {cleared}."
    assert figure(frame, "standing") == "1 run forced"
    latest = frame.locator("#overrides tbody tr").first.inner_text()
    assert "force-run" in latest and "admin" in latest and f"overrules the skip of run {deployment['run_id']}" in latest
    assert deployment["run_id"] in latest and cleared in latest
    made = read_overrides(deployment["config"], GATED)
    assert [(o.action, o.by, o.run_id, o.airflow_clear) for o in made] == [
        ("force-run", "admin", deployment["run_id"], cleared)]
    assert made[0].reason == f"overrules the skip of run {deployment['run_id']}"
    gate = page.request.get(f"{deployment['base']}/api/v2/dags/{GATED}/dagRuns/{deployment['run_id']}"
                            "/taskInstances/graphlet_gate").json()
    assert gate["state"] is None and gate["try_number"] >= 1, "cleared: it waits for the scheduler to decide again"
    # Never-skip, made on the page, is recorded too and changes what the page offers.
    frame.locator("input[name=reason]").fill("release week")
    frame.locator("#never-skip").click()
    frame.locator("#allow-skip").wait_for()
    assert figure(frame, "standing") == "never skip"
    assert [o.action for o in read_overrides(deployment["config"], GATED)] == ["force-run", "never-skip"]
    page.context.close()


def test_overrides_need_edit_permission_and_a_form_of_our_own(deployment, browser):
    from itsdangerous import URLSafeTimedSerializer

    before = read_overrides(deployment["config"], GATED)
    viewer = signed_in(browser, deployment, "viewer")
    viewer.goto(f"{deployment['base']}/graphlets/skips?dag={GATED}")
    assert viewer.locator("button.overrule").count() == 0
    assert "needs edit permission" in viewer.inner_text("main")
    token = URLSafeTimedSerializer(SECRET, salt="airflow-graphlets-override").dumps("viewer")
    refused = viewer.request.post(f"{deployment['base']}/graphlets/skips/override",
                                  form={"dag": GATED, "action": "allow-skip", "csrf": token})
    assert refused.status == 403 and "needs edit permission" in refused.text()
    viewer.context.close()
    admin = signed_in(browser, deployment, "admin")
    url = f"{deployment['base']}/graphlets/skips/override"
    missing = admin.request.post(url, form={"dag": GATED, "action": "allow-skip"})
    assert missing.status == 403 and "security token" in missing.text()
    admin.goto(f"{deployment['base']}/graphlets/skips?dag={GATED}")
    token = admin.locator("input[name=csrf]").first.get_attribute("value")
    foreign = admin.request.post(url, form={"dag": GATED, "action": "allow-skip", "csrf": token},
                                 headers={"Origin": "https://evil.example"})
    assert foreign.status == 403 and "another site" in foreign.text()
    assert read_overrides(deployment["config"], GATED) == before
    admin.context.close()


def test_bad_addresses_get_a_page_that_says_what_to_fix(deployment, browser):
    page = signed_in(browser, deployment, "admin")
    base = f"{deployment['base']}/graphlets"
    for path, status, says in (
        ("/graphlet?dag=ct_pipeline_1&trainer=abc", 400, "trainer: Input should be a valid integer"),
        ("/graphlet?dag=ct_pipeline_1&trainer=1", 404, "has no graphlet whose trainer is execution 1"),
        ("/?from=yesterday", 400, "is not a date: use YYYY-MM-DD"),
        ("/?from=2026-03-01&to=2026-02-01", 400, "swap from and to"),
        ("/pipeline", 400, "dag: Field required"),
    ):
        response = page.request.get(base + path)
        assert (response.status, says in response.text()) == (status, True), (path, response.text()[-500:])
    # A confirmation comes from the store, never from the address.
    page.goto(f"{base}/skips?dag={GATED}&done=Your+password+expired,+call+555")
    assert page.locator("#done").count() == 0
    page.context.close()


def test_each_dag_has_a_graphlets_tab_showing_its_pipeline_view(deployment, browser):
    page = signed_in(browser, deployment, "admin")
    page.goto(f"{deployment['base']}/dags/{GATED}")
    from playwright.sync_api import expect

    tab = page.locator(f"a[href='/dags/{GATED}/plugin/graphlets-dag']").filter(has_text="Graphlets")
    expect(tab).to_have_count(1)  # waits while the DAG page renders its tabs
    tab.click()
    page.wait_for_url(re.compile(rf".*/dags/{GATED}/plugin/graphlets-dag$"))
    frame = page.frame_locator("iframe")
    frame.locator("h1").filter(has_text=f"Pipeline {GATED}").wait_for()
    # (Run alone, this test may find no summary yet: the page reloads until there is one.)
    frame.locator("[data-figure=skips]").filter(has_text=re.compile(r"^1$")).wait_for(timeout=90_000)
    page.context.close()
