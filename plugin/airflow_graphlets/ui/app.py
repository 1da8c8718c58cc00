"""Airflow edge: the Graphlets pages, a FastAPI app the plugin mounts on Airflow's API server.

Pages (all GET, all needing a signed-in Airflow user; see ``docs/ui.md``):

``/``           waste overview: compute spent, wasted and saved by skipping, over time and per DAG
``/pipeline``   one DAG's graphlet timeline, push cadence and deployment delay
``/graphlet``   one model's provenance subgraph, with links to the Airflow task instances
``/skips``      the skip log of a DAG, its overrides, and the forms that make one (POST ``/skips/override``)

Pages read the summary (``airflow_graphlets.summary``), except the skip log and the graphlet
view, which read the MLMD store directly so an override shows the moment it is made.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from airflow_graphlets.errors import GraphletsError, mask_secrets
from airflow_graphlets.units import duration
from airflow_graphlets.ui.access import Viewer, check_same_origin, csrf_token, current_viewer
from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse

MOUNT = "/graphlets"
TEMPLATES = os.path.join(os.path.dirname(__file__), "templates")
PER_PAGE = 25
SKIPS_PER_PAGE = 50
_CACHE_SIZE = 128

ViewerDep = Annotated[Viewer, Depends(current_viewer)]


@dataclass
class Services:
    """What the pages share in one API-server process: the store, the summary, a page cache."""

    store: Any  # StoreConfig
    summary: Any  # Engine
    max_age: float
    airflow_api_url: str = ""  # [graphlets] airflow_api_url; "" for the address a request came in on
    cache: OrderedDict = field(default_factory=OrderedDict)
    refresher: subprocess.Popen | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def state(self):
        from airflow_graphlets.summary.queries import summary_state

        return summary_state(self.summary)

    def refresh_if_stale(self, state) -> bool:
        """Start ``graphlets summarize`` in a process of its own when the summary is older than
        its maximum age; returns whether a refresh is running."""
        with self.lock:
            if self.refresher is not None and self.refresher.poll() is None:
                return True
            if state.refreshed_at is not None and time.time() - state.refreshed_at < self.max_age:
                return False
            # The child reads the same [graphlets] settings and connection as this process: no
            # database password on a command line where `ps` shows it.
            self.refresher = subprocess.Popen(
                [sys.executable, "-m", "airflow_graphlets.cli", "summarize", "--if-unlocked"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            return True

    def cached(self, key: tuple, make):
        """``make()``, remembered per key (the key holds the summary's refresh time, so a new
        summary is never hidden by an old answer)."""
        with self.lock:
            if key in self.cache:
                self.cache.move_to_end(key)
                return self.cache[key]
        value = make()
        with self.lock:
            self.cache[key] = value
            while len(self.cache) > _CACHE_SIZE:
                self.cache.popitem(last=False)
        return value


def _services(request: Request) -> Services:
    app = request.app
    with app.state.services_lock:
        if app.state.services is None:
            from airflow_graphlets.airflow_config import load_settings, resolve_store
            from airflow_graphlets.summary.database import summary_engine

            settings = load_settings()
            app.state.services = Services(store=resolve_store(settings), summary=summary_engine(settings.summary_uri),
                                          max_age=settings.summary_max_age_seconds,
                                          airflow_api_url=settings.airflow_api_url)
        return app.state.services


ServicesDep = Annotated[Services, Depends(_services)]


def create_app() -> FastAPI:
    """The Graphlets FastAPI app (mounted by the plugin at :data:`MOUNT`)."""
    import jinja2

    app = FastAPI(title="airflow-graphlets", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.services = None
    app.state.services_lock = threading.Lock()
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters.update(duration=duration, when=_when, day=_day, pct=_pct)
    for name in env.list_templates():  # compiled now, not on some user's first page
        env.get_template(name)

    def render(request: Request, name: str, viewer: Viewer | None, status_code: int = 200, **context) -> HTMLResponse:
        base, airflow_root = _roots(request)

        def url(path: str, **params) -> str:
            query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
            return f"{base}{path}" + (f"?{query}" if query else "")

        def airflow_url(*segments: str, **params) -> str:
            path = "/".join(quote(str(s), safe="") for s in segments)
            query = urlencode({k: v for k, v in params.items() if v is not None})
            return f"{airflow_root}/{path}" + (f"?{query}" if query else "")

        html = env.get_template(name).render(request=request, viewer=viewer, url=url, airflow_url=airflow_url,
                                             **context)
        return HTMLResponse(html, status_code=status_code,
                            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
                                     "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                     "img-src 'self' data:; form-action 'self'; frame-ancestors 'self'"})

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException):
        title = {401: "Sign in to Airflow first", 403: "Not allowed", 404: "Not found"}.get(exc.status_code, "Error")
        return render(request, "error.html", None, status_code=exc.status_code, title=title, message=str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors())
        return render(request, "error.html", None, status_code=400, title="Bad request",
                      message=f"{problems}. Fix the address and retry.")

    @app.exception_handler(GraphletsError)
    async def _graphlets_error(request: Request, exc: GraphletsError):
        return render(request, "error.html", None, status_code=503, title="The MLMD store cannot be read",
                      message=mask_secrets(str(exc)))

    @app.get("/", response_class=HTMLResponse)
    def overview_page(request: Request, viewer: ViewerDep, services: ServicesDep,
                      since: Annotated[str | None, Query(alias="from")] = None,
                      until: Annotated[str | None, Query(alias="to")] = None,
                      dag: str | None = None, page: Annotated[int, Query(ge=0)] = 0):
        from airflow_graphlets.summary import queries
        from airflow_graphlets.ui import svg

        first, last = _day_param("from", since), _day_param("to", until)
        if first is not None and last is not None and first > last:
            raise HTTPException(400, f"The range starts ({since}) after it ends ({until}): swap from and to.")
        if dag and not viewer.can_read(dag):
            raise HTTPException(403, f"You may not read DAG {dag!r}.")
        state = services.state()
        refreshing = services.refresh_if_stale(state)
        readable = viewer.readable_dags()
        key = ("overview", state.refreshed_at, first, last, dag, page, None if readable is None else frozenset(readable))
        view = services.cached(key, lambda: queries.overview(services.summary, first_day=first, last_day=last,
                                                             dags=readable, dag=dag or None, page=page,
                                                             per_page=PER_PAGE))
        dags = services.cached(("dags", state.refreshed_at, key[-1]), lambda: queries.dag_ids(services.summary, readable))
        series = ("pushed", "wasted", "pending", "unattributed", "saved")
        chart = svg.stacked_bars([(b.day, {s: getattr(b.totals, s) for s in series}) for b in view.series], series)
        return render(request, "overview.html", viewer, view=view, chart=chart, legend=svg.legend(series),
                      state=state, refreshing=refreshing, dags=dags, dag=dag or "", since=since or "",
                      until=until or "", page=page, per_page=PER_PAGE)

    @app.get("/pipeline", response_class=HTMLResponse)
    def pipeline_page(request: Request, viewer: ViewerDep, services: ServicesDep, dag: str,
                      page: Annotated[int, Query(ge=0)] = 0):
        from airflow_graphlets.summary import queries
        from airflow_graphlets.ui import svg

        _require_read(viewer, dag)
        state = services.state()
        refreshing = services.refresh_if_stale(state)
        view = services.cached(("pipeline", state.refreshed_at, dag, page),
                               lambda: queries.pipeline_view(services.summary, dag, page=page))
        base, _ = _roots(request)
        link = lambda trainer: f"{base}/graphlet?" + urlencode({"dag": dag, "trainer": trainer})  # noqa: E731
        return render(request, "pipeline.html", viewer, view=view, timeline=svg.timeline(view.timeline, view.decisions, link),
                      legend=svg.legend(("pushed", "blessed", "not_pushed", "failed", "running", "skip")),
                      state=state, refreshing=refreshing, dag=dag, page=page, per_page=50)

    @app.get("/graphlet", response_class=HTMLResponse)
    def graphlet_page(request: Request, viewer: ViewerDep, services: ServicesDep, dag: str,
                      trainer: Annotated[int, Query(ge=1)]):
        from airflow_graphlets.graphlets.subgraph import GraphletNotFoundError, read_subgraph
        from airflow_graphlets.ui import svg

        _require_read(viewer, dag)
        try:
            graph = read_subgraph(services.store, dag, trainer)
        except GraphletNotFoundError as err:
            raise HTTPException(404, str(err)) from None
        _, airflow_root = _roots(request)

        def task_link(e) -> str | None:
            if not (e.dag_id and e.run_id and e.task_id):
                return None
            path = "/".join(quote(s, safe="") for s in ("dags", e.dag_id, "runs", e.run_id, "tasks", e.task_id))
            if e.map_index is not None and e.map_index >= 0:
                path += f"/mapped/{e.map_index}"
            return f"{airflow_root}/{path}" + (f"?try_number={e.try_number}" if e.try_number else "")

        executions = sorted(graph.executions.values(), key=lambda e: e.id)
        return render(request, "graphlet.html", viewer, graph=graph, drawing=svg.provenance(graph, task_link),
                      executions=executions, task_link=task_link, dag=dag,
                      artifacts=sorted(graph.artifacts.values(), key=lambda a: a.id))

    @app.get("/skips", response_class=HTMLResponse)
    def skips_page(request: Request, viewer: ViewerDep, services: ServicesDep, dag: str | None = None,
                   page: Annotated[int, Query(ge=0)] = 0, done: str | None = None):
        from airflow_graphlets.prune.decisions import read_decisions
        from airflow_graphlets.prune.overrides import awaiting_runs, read_overrides, standing
        from airflow_graphlets.summary import queries

        if not dag:
            state = services.state()
            services.refresh_if_stale(state)
            readable = viewer.readable_dags()
            gates = services.cached(("gates", state.refreshed_at, None if readable is None else frozenset(readable)),
                                    lambda: queries.gated_dags(services.summary, readable))
            return render(request, "skips_index.html", viewer, gates=gates, state=state)
        _require_read(viewer, dag)
        decisions = read_decisions(services.store, dag)
        overrides = read_overrides(services.store, dag)
        now_standing = standing(overrides, decisions[-1].decided_at if decisions else None)
        newest = decisions[::-1]
        shown = newest[page * SKIPS_PER_PAGE:(page + 1) * SKIPS_PER_PAGE]
        can_edit = viewer.can_edit(dag)
        # The confirmation is read from the store, not from the address: a crafted link cannot
        # put words on the page.
        latest = overrides[-1] if overrides else None
        confirmed = f"{latest.action} recorded by {latest.by}" if latest and done == latest.action else ""
        if confirmed and latest.airflow_clear:
            confirmed += f"; {latest.airflow_clear}"
        return render(request, "skips.html", viewer, dag=dag, decisions=shown, total=len(decisions),
                      skipped=sum(d.decision == "skip" for d in decisions), overrides=overrides[::-1],
                      standing=now_standing, pending=awaiting_runs(overrides, decisions), can_edit=can_edit,
                      csrf=csrf_token(viewer) if can_edit else "",
                      page=page, per_page=SKIPS_PER_PAGE, done=confirmed)

    @app.post("/skips/override")
    def override_action(request: Request, viewer: ViewerDep, services: ServicesDep,
                        dag: Annotated[str, Form()], action: Annotated[str, Form()],
                        csrf: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "",
                        run_id: Annotated[str, Form()] = ""):
        from airflow_graphlets.prune.overrides import (
            ACTIONS,
            FORCE_RUN,
            OverrideError,
            note_airflow_clear_within,
            record_override_within,
        )

        check_same_origin(request, viewer, csrf)
        if action not in ACTIONS:
            raise HTTPException(400, f"Unknown action {action!r}: use one of {', '.join(ACTIONS)}.")
        if not viewer.can_edit(dag):
            raise HTTPException(403, f"Overriding the gate of {dag!r} needs edit permission on that DAG.")
        why = reason.strip()
        gate_task = None
        if run_id:
            if action != FORCE_RUN:
                raise HTTPException(400, f"Only a force-run overrules the skip of a run, not {action!r}.")
            gate_task = _skipping_gate(services.store, dag, run_id)
            why = f"overrules the skip of run {run_id}" + (f": {why}" if why else "")
        try:
            # Bounded: a store that hangs must not hold the API server's worker (a 503 says so).
            made = record_override_within(services.store, dag, action, viewer.name, why, run_id=run_id)
            if gate_task is not None:  # train now: Airflow clears the run's training branch, as this user
                from airflow_graphlets.ui.airflow_clear import ClearOutcome, api_address, clear_training_branch

                try:
                    api_root = api_address(request, services.airflow_api_url, _roots(request)[1])
                except ValueError as err:
                    outcome = ClearOutcome(error=str(err))
                else:
                    outcome = clear_training_branch(request, api_root, dag, run_id, gate_task)
                note_airflow_clear_within(services.store, made, outcome.note)
        except OverrideError as err:
            raise HTTPException(400, str(err)) from None
        base, _ = _roots(request)
        target = f"{base}/skips?" + urlencode({"dag": dag, "done": made.action})
        return RedirectResponse(target, status_code=303)

    return app


def _roots(request: Request) -> tuple[str, str]:
    """Where these pages are mounted, and where Airflow's own UI is (both without a trailing /)."""
    base = request.scope.get("root_path", "").rstrip("/")
    return base, base[: -len(MOUNT)] if base.endswith(MOUNT) else ""


def _skipping_gate(store, dag: str, run_id: str) -> str:
    """The gate task that skipped the training of ``run_id`` (read from the skip log, not the form)."""
    from airflow_graphlets.prune.decisions import read_decisions

    of_run = [d for d in read_decisions(store, dag) if d.run_id == run_id]
    if not of_run or of_run[-1].decision != "skip":
        raise HTTPException(400, f"Run {run_id!r} of {dag!r} has no skip to overrule: its gate "
                                 f"{'last ran the training' if of_run else 'has not decided'}.")
    return of_run[-1].task_id


def _require_read(viewer: Viewer, dag: str) -> None:
    if not dag:
        raise HTTPException(400, "Name the DAG: add ?dag=<dag_id> to the address.")
    if not viewer.can_read(dag):
        raise HTTPException(403, f"You may not read DAG {dag!r}: ask an Airflow admin for access.")


def _day_param(name: str, text: str | None) -> int | None:
    if not text:
        return None
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        raise HTTPException(400, f"{name}={text!r} is not a date: use YYYY-MM-DD, such as 2026-11-30.") from None
    return (day - dt.date(1970, 1, 1)).days


def _when(epoch: float | None) -> str:
    if not epoch:
        return "–"
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _day(day: int | None) -> str:
    return "" if day is None else (dt.date(1970, 1, 1) + dt.timedelta(days=int(day))).isoformat()


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"
