"""The ``graphlets`` command line.

``graphlets spool status``   what waits in the spool
``graphlets spool replay``   write what waits into the MLMD store, in order, once each
``graphlets show --store URI [--dag DAG]``   executions recorded, for a quick look
``graphlets analyze --store URI [--json] [--html F] [--png F]``   the paper's graphlet analyses
``graphlets simulate --store URI --pipelines N --days D --seed S``   write a synthetic history
``graphlets replay --store URI [--policy F] [--json] [--html F] [--png F]``   the skip policy replayed
``graphlets decisions --store URI --dag DAG [--since WHEN] [--json] [--audit]``   the gate's skip log
``graphlets override ACTION --dag DAG [--by WHO] [--reason TEXT]``   force-run, never-skip, allow-skip, list
``graphlets train-predictor --store URI --out FILE [--policy F]``   the gate's predictor, from history
``graphlets summarize [--store URI] [--summary URL]``   refresh the summary the UI pages read

Without ``--store``/``--spool-dir`` the command reads ``[graphlets]`` and the ``mlmd_default``
connection the way the listener does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict

from airflow_graphlets.errors import GraphletsError, StoreConfigError
from airflow_graphlets.recorder.replay import replay_spool
from airflow_graphlets.recorder.spool import Spool
from airflow_graphlets.store.uri import StoreConfig, parse_store_uri


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 ok, 1 incomplete, 2 bad input)."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        _check_text(args)
        return args.run(args)
    except GraphletsError as err:
        print(f"graphlets: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader stopped early (`graphlets decisions ... | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so exit's flush does not fail again
        return 0


def _check_text(args: argparse.Namespace) -> None:
    """Refuse arguments that are not UTF-8 (Python hands them over with surrogates), before they
    reach a store that would refuse them with a less helpful error."""
    for name, value in vars(args).items():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                shown = value.encode("utf-8", "backslashreplace").decode()
                raise GraphletsError(f"--{name.replace('_', '-')} {shown!r} is not valid UTF-8: pass it as UTF-8 text.") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="graphlets", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(required=True, dest="command")

    spool = commands.add_parser("spool", help="inspect or replay the local spool")
    spool_commands = spool.add_subparsers(required=True, dest="spool_command")
    status = spool_commands.add_parser("status", help="what waits in the spool")
    replay = spool_commands.add_parser("replay", help="write what waits into the MLMD store")
    for sub in (status, replay):
        sub.add_argument("--spool-dir", help="spool directory (default: [graphlets] spool_dir)")
        sub.add_argument("--json", action="store_true", help="print JSON")
    replay.add_argument("--store", help="store URI (default: the mlmd_default connection)")
    replay.add_argument("--timeout", type=float, default=None, help="seconds to spend at most")
    status.set_defaults(run=_spool_status)
    replay.set_defaults(run=_spool_replay)

    show = commands.add_parser("show", help="list recorded executions")
    show.add_argument("--store", help="store URI (default: the mlmd_default connection)")
    show.add_argument("--dag", help="only this DAG (pipeline)")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(run=_show)

    analyze = commands.add_parser(
        "analyze", help="extract model graphlets and report lifespan, cadence, pushes, overlap, cost and waste"
    )
    analyze.add_argument("--store", help="store URI, read-only (default: the mlmd_default connection)")
    analyze.add_argument("--pipeline", action="append", help="only this pipeline (repeatable)")
    analyze.add_argument("--json", action="store_true", help="print the JSON document (docs/analysis-json.md)")
    analyze.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report with the figures")
    analyze.add_argument("--png", metavar="FILE", help="also write the figures as one PNG")
    analyze.add_argument("--top", type=int, default=15, help="pipelines listed in the terminal report (default 15)")
    analyze.add_argument(
        "--clock", choices=("logical", "wall"), default="logical",
        help="times from the runs' logical dates (default; what a backfill needs) or from when executions ran",
    )
    analyze.add_argument(
        "--reader", choices=("bulk", "mlmd-api"), default="bulk",
        help="bulk SQL reader (default) or the slow reference reader through MLMD's API",
    )
    analyze.add_argument(
        "--client", choices=("native", "mlmd"), default="native",
        help="with --reader mlmd-api: the native store's API (default) or ml-metadata's client "
             "(needs airflow-graphlets[mlmd])",
    )
    analyze.set_defaults(run=_analyze)

    replay = commands.add_parser(
        "replay", help="replay a store's history under the learned skip policy and baselines (docs/prune.md)"
    )
    replay.add_argument("--store", help="store URI, read-only (default: the mlmd_default connection)")
    replay.add_argument("--policy", metavar="FILE", help="TOML with [policy] and [policy.guardrails] (docs/prune.md)")
    replay.add_argument("--json", action="store_true", help="print the JSON document")
    replay.add_argument("--html", metavar="FILE", help="also write the trade-off curve and tables as HTML")
    replay.add_argument("--predictor", metavar="FILE",
                        help="replay this predictor file at its own operating point instead of training one")
    replay.add_argument("--prior", action="store_true", help="replay the prior predictor shipped with the package")
    replay.add_argument("--png", metavar="FILE", help="also write the trade-off curve as PNG")
    replay.set_defaults(run=_replay)

    decisions = commands.add_parser("decisions", help="the skip log: a DAG's gate decisions (docs/prune.md)")
    decisions.add_argument("--store", help="store URI, read-only (default: the mlmd_default connection)")
    decisions.add_argument("--dag", required=True, help="the DAG (pipeline)")
    decisions.add_argument("--since", help="only decisions at or after this ISO date or time (UTC when no zone)")
    decisions.add_argument("--json", action="store_true", help="print JSON")
    decisions.add_argument("--audit", action="store_true",
                           help="instead, estimate the pushes the skips lost from the exploration runs (docs/prune.md)")
    decisions.set_defaults(run=_decisions)

    override = commands.add_parser("override", help="overrule the gate of a DAG, recorded in the store with who")
    override.add_argument("action", choices=("force-run", "never-skip", "allow-skip", "list"),
                          help="force-run: the next decision runs; never-skip: every decision runs until "
                               "allow-skip; list: the DAG's overrides")
    override.add_argument("--dag", required=True, help="the DAG (pipeline) the override is for")
    override.add_argument("--by", help="who makes it (default: your login name)")
    override.add_argument("--reason", default="", help="why, for the skip log")
    override.add_argument("--run", dest="run_id", default="", metavar="RUN_ID",
                          help="with force-run: bind it to this DAG run (its gate honours it when it decides "
                               "again: clear the run's gate task in Airflow to train now)")
    override.add_argument("--store", help="store URI (default: the mlmd_default connection)")
    override.add_argument("--json", action="store_true", help="print JSON")
    override.set_defaults(run=_override)

    train = commands.add_parser("train-predictor", help="train the gate's push predictor on a store's history")
    train.add_argument("--store", help="store URI, read-only (default: the mlmd_default connection)")
    train.add_argument("--out", metavar="FILE",
                       help="where to write the predictor (.npz; default: [graphlets] predictor_path, where gates "
                            "look for it)")
    train.add_argument("--policy", metavar="FILE", help="TOML with [policy] (target_pushes_kept sets the threshold)")
    train.add_argument("--seed", type=int, default=0, help="random seed of the training")
    train.set_defaults(run=_train_predictor)

    summarize = commands.add_parser("summarize", help="refresh the summary the Graphlets UI pages read (docs/ui.md)")
    summarize.add_argument("--store", help="MLMD store URI (default: the mlmd_default connection)")
    summarize.add_argument("--summary", help="summary database URL (default: [graphlets] summary_uri)")
    summarize.add_argument("--full", action="store_true",
                           help="rebuild the whole summary instead of reading what changed since the last refresh")
    summarize.add_argument("--if-unlocked", action="store_true",
                           help="do nothing when another summarize holds the lock (how the UI starts it)")
    summarize.set_defaults(run=_summarize)

    simulate = commands.add_parser("simulate", help="write a simulated continuous-training history into a store")
    simulate.add_argument("--store", required=True, help="store URI of a new or empty store")
    simulate.add_argument("--pipelines", type=int, default=100, help="pipelines (default 100; the paper: 3000)")
    simulate.add_argument("--days", type=int, default=120, help="days of history (default 120)")
    simulate.add_argument("--seed", type=int, default=0, help="random seed: same seed, same store")
    simulate.add_argument("--profile", help="TOML file overriding the default distributions (docs/simulate.md)")
    simulate.add_argument("--producers", type=int,
                          help="SQLite: processes building batches side by side (default: one per core, up to 4)")
    simulate.add_argument("--quiet", action="store_true", help="no progress bar")
    simulate.set_defaults(run=_simulate)
    return parser


def _spool_status(args: argparse.Namespace) -> int:
    status = Spool(args.spool_dir or _settings().spool_dir).status()
    if args.json:
        print(json.dumps(asdict(status), indent=2))
    else:
        age = "-" if status.oldest_age_seconds is None else f"{status.oldest_age_seconds:.0f}s"
        print(f"spool       {status.directory}")
        print(f"pending     {status.pending} records ({status.pending_bytes} bytes), oldest {age}")
        print(f"quarantined {status.quarantined} unreadable records (see corrupt/)")
    return 0


def _spool_replay(args: argparse.Namespace) -> int:
    spool = Spool(args.spool_dir or _settings().spool_dir)
    store = _store(args.store)
    report = replay_spool(spool, store, timeout=args.timeout)
    summary = {
        "store": str(store),
        "written": report.written,
        "quarantined": report.quarantined,
        "remaining": report.remaining,
        "error": report.error,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"wrote {report.written} records to {store}; {report.remaining} remain, "
              f"{report.quarantined} quarantined" + (f"; stopped: {report.error}" if report.error else ""))
    return 0 if report.complete else 1


def _show(args: argparse.Namespace) -> int:
    from airflow_graphlets.store.connect import open_store
    from airflow_graphlets.store.snapshot import execution_rows

    rows = execution_rows(open_store(_store(args.store)), dag_id=args.dag)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    columns = ("id", "pipeline", "node", "type", "state", "try", "inputs", "outputs")
    print("  ".join(f"{c:<{_WIDTHS[c]}}" for c in columns))
    for row in rows:
        print("  ".join(f"{str(row[c])[:_WIDTHS[c]]:<{_WIDTHS[c]}}" for c in columns))
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from airflow_graphlets.graphlets.analyses import analyze
    from airflow_graphlets.graphlets.reports import to_json, to_text

    if args.top < 0:
        raise StoreConfigError(f"--top must be 0 or more, not {args.top}.")
    store = _store(args.store)
    if args.reader == "bulk":
        from airflow_graphlets.graphlets.bulk_reader import read_graphlets

        extraction = read_graphlets(store, args.pipeline)
    else:
        from airflow_graphlets.graphlets.api_reader import read_graphlets_with_mlmd_api

        if args.client == "mlmd":
            _require_mlmd_client()
        extraction = read_graphlets_with_mlmd_api(store, args.pipeline, client=args.client)
    analysis = analyze(extraction, clock=args.clock)
    print(to_json(analysis) if args.json else to_text(analysis, top=args.top), end="" if not args.json else "\n")
    if args.html or args.png:
        from airflow_graphlets.graphlets.plots import write_html, write_png

        written = [write_html(analysis, args.html)] if args.html else []
        written += [write_png(analysis, args.png)] if args.png else []
        for path in written:
            print(f"wrote {path}", file=sys.stderr)
    return 0


def _require_mlmd_client() -> None:
    import importlib.util

    if importlib.util.find_spec("ml_metadata") is None:
        raise StoreConfigError("--client mlmd needs ml-metadata's client: pip install 'airflow-graphlets[mlmd]' "
                               "(Python 3.10 or 3.11, with overrides.txt), or leave --client at native.")


def _replay(args: argparse.Namespace) -> int:
    import json

    from airflow_graphlets.graphlets.bulk_reader import read_graphlets
    from airflow_graphlets.prune.evaluate import Inputs, PolicySettings, evaluate
    from airflow_graphlets.prune.report import to_text, write_html, write_png

    from airflow_graphlets.prune.predictor import PushPredictor
    from airflow_graphlets.prune.prior import PRIOR_PATH

    settings = PolicySettings.from_toml(args.policy) if args.policy else PolicySettings()
    store = _store(args.store)
    given = args.predictor or (PRIOR_PATH if args.prior else None)
    predictor = PushPredictor.load(given) if given else None
    evaluation = evaluate(read_graphlets(store), Inputs.read(store), settings, predictor=predictor)
    print(json.dumps(evaluation.to_json_document(), indent=1) if args.json else to_text(evaluation), end="\n" if args.json else "")
    for path in ([write_html(evaluation, args.html)] if args.html else []) + ([write_png(evaluation, args.png)] if args.png else []):
        print(f"wrote {path}", file=sys.stderr)
    return 0


def _decisions(args: argparse.Namespace) -> int:
    import datetime as dt
    import json

    from airflow_graphlets.prune.decisions import read_decisions

    since = None
    if args.since:
        try:
            when = dt.datetime.fromisoformat(args.since)
        except ValueError:
            raise StoreConfigError(f"--since {args.since!r} is not an ISO date or time such as 2026-01-15.") from None
        since = (when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)).timestamp()
    if args.audit:
        return _audit(args, since)
    found = read_decisions(_store(args.store), args.dag, since)
    if args.json:
        print(json.dumps([d.as_dict() for d in found], indent=1))
        return 0
    print(f"{len(found)} gate decisions of {_printable(args.dag)}")
    for d in found:
        p = "-" if d.probability is None else f"{d.probability:.2f}"
        print(f"  {_utc(d.decided_at)}  {d.decision:<4}  p={p:<4}  {_printable(d.run_id)}  {_printable(d.reason)}"
              + (f"  [override: {_printable(d.override)}]" if d.override else ""))
    return 0


def _audit(args: argparse.Namespace, since: float | None) -> int:
    import json

    from airflow_graphlets.prune.audit import read_audit

    found = read_audit(_store(args.store), args.dag, since)
    if args.json:
        print(json.dumps(found.as_dict(), indent=1))
        return 0
    print(f"{found.decisions} gate decisions of {_printable(args.dag)}: {found.skipped} skipped, "
          f"{found.pushed} pushes among the runs that trained"
          + (f" ({found.unknown} runs with no outcome in the store yet)" if found.unknown else ""))
    if found.lost is None:
        print("no exploration run has an outcome yet: the pushes the skips lost cannot be estimated "
              "(exploration = 0 in the gate's guardrails turns the count off)")
        return 0
    low, high = found.lost_range
    kept_low, kept_high = found.kept_range
    print(f"exploration: {found.explored} would-be skips trained anyway, {found.explored_pushed} pushed")
    print(f"estimated pushes lost to skips: {found.lost:.1f} (95 % range {low:.1f}-{high:.1f}); "
          f"share of pushes kept: {found.kept_share:.1%} ({kept_low:.1%}-{kept_high:.1%})")
    return 0


def _override(args: argparse.Namespace) -> int:
    import getpass
    import json

    from airflow_graphlets.prune.overrides import read_overrides, record_override

    store = _store(args.store)
    if args.action == "list":
        found = read_overrides(store, args.dag)
        if args.json:
            print(json.dumps([o.as_dict() for o in found], indent=1))
            return 0
        print(f"{len(found)} overrides of {_printable(args.dag)}")
        for o in found:
            print(f"  {_utc(o.at)}  {o.action:<10}  by {_printable(o.by)}"
                  + (f"  run {_printable(o.run_id)}" if o.run_id else "")
                  + (f"  {_printable(o.reason)}" if o.reason else ""))
        return 0
    made = record_override(store, args.dag, args.action, args.by or getpass.getuser(), args.reason, run_id=args.run_id)
    if args.json:
        print(json.dumps(made.as_dict(), indent=1))
    elif made.run_id:
        print(f"recorded {made.action} of run {_printable(made.run_id)} for {_printable(made.dag_id)} by "
              f"{_printable(made.by)} (execution {made.execution_id}); that run's gate honours it when it decides "
              f"again: clear its gate task, downstream included, in Airflow to train now")
    else:
        print(f"recorded {made.action} for {_printable(made.dag_id)} by {_printable(made.by)} "
              f"(execution {made.execution_id}); the DAG's next gate decision honours it")
    return 0


def _train_predictor(args: argparse.Namespace) -> int:
    from airflow_graphlets.prune.evaluate import PolicySettings
    from airflow_graphlets.prune.retrain import retrain

    settings = PolicySettings.from_toml(args.policy) if args.policy else PolicySettings()
    # The default path lives under AIRFLOW_HOME and is made when missing; an --out is taken as given.
    done = retrain(_store(args.store), args.out or _settings().predictor_path, settings, seed=args.seed,
                   make_directory=not args.out)
    predictor = done.predictor
    print(f"wrote {done.path}: {predictor.version}, trained on {predictor.trained_rows:,} runs "
          f"({predictor.push_rate:.1%} pushed); threshold {predictor.threshold:.3g}, chosen by time-ordered "
          f"cross-validation to keep {settings.target_pushes_kept:.0%} of pushes"
          + (f"; replaces {done.replaced}" if done.replaced else ""))
    return 0


def _summarize(args: argparse.Namespace) -> int:
    from airflow_graphlets.summary.database import summary_engine
    from airflow_graphlets.summary.refresh import refresh_lock, refresh_summary, summary_lock_path

    store = _store(args.store)
    url = args.summary or _settings().summary_uri
    engine = summary_engine(url)
    lock = summary_lock_path(url)
    with refresh_lock(lock) as held:
        if not held and args.if_unlocked:
            print(f"another summarize holds {lock}; nothing to do")
            return 0
        if not held:
            raise GraphletsError(f"Another graphlets summarize is running (it holds {lock}); wait for it to end.")
        result = refresh_summary(store, engine, full=args.full)
    how = "in full" if result.full else "incrementally (the newest runs of the pipelines written to since)"
    print(f"summarized {result.graphlets:,} graphlets of {result.pipelines:,} pipelines and {result.decisions:,} "
          f"gate decisions from {store} {how} in {result.seconds:.1f} s")
    return 0


def _utc(epoch_seconds: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch_seconds, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in str(text))


def _simulate(args: argparse.Namespace) -> int:
    from airflow_graphlets.simulate.profile import Profile
    from airflow_graphlets.simulate.run import simulate

    profile = Profile.from_toml(args.profile) if args.profile else Profile.paper()
    began = time.monotonic()

    def progress(done: int, total: int) -> None:
        width = 30
        filled = width * done // total
        elapsed = time.monotonic() - began
        eta = elapsed / done * (total - done)
        print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} pipelines, {elapsed:.0f} s, "
              f"~{eta:.0f} s left", end="", file=sys.stderr, flush=True)

    report = simulate(parse_store_uri(args.store), args.pipelines, args.days, args.seed, profile,
                      None if args.quiet else progress, producers=args.producers)
    if not args.quiet:
        print(file=sys.stderr)
    print(f"wrote {report.pipelines} pipelines, {report.runs:,} runs, {report.executions:,} executions, "
          f"{report.artifacts:,} artifacts, {report.events:,} events into {report.store} in {report.seconds:.0f} s "
          f"({report.executions_per_second:,.0f} executions/s)")
    return 0


_WIDTHS = {"id": 5, "pipeline": 20, "node": 30, "type": 44, "state": 9, "try": 3, "inputs": 40, "outputs": 40}


def _store(uri: str | None) -> StoreConfig:
    if uri:
        return parse_store_uri(uri)
    from airflow_graphlets.airflow_config import resolve_store

    return resolve_store(_settings())


def _settings():
    from airflow_graphlets.airflow_config import load_settings

    return load_settings()


if __name__ == "__main__":
    sys.exit(main())
