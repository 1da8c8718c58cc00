"""The push predictor on outcomes nobody here designed: continuous-training histories in which every
blessing and push comes from really training a model and evaluating it against the deployed one.

For each seed: draw the benchmark's pipelines (``real_outcomes/specs.py``: 48 by default, 120
days), live them (``real_outcomes/lab.py``: every candidate trained with scikit-learn on its
window of a drifting river stream, scored on every later span), and write two MLMD stores as
TFX leaves them (``real_outcomes/tfx_store.py``): ``tfx`` (TFX's components only, with TFDV
statistics files) and ``tfx+gate`` (also the graphlet gate in its learning phase, which logged
the deployed model's accuracy on each new span that its DAG handed it). Then, as ``graphlets
replay`` does, train on the first half of the period and replay the second half, on each store,
with the recorded outcomes and in closed loop (``real_outcomes/closed_loop.py``: where a skip
changes which model is deployed, later evaluations are redone against that model).

Seeds: develop on ``--develop`` (``DEVELOPMENT_SEEDS``); the figures reported come from
``REPORT_SEEDS``, the default. Generated stores are kept under ``benchmarks/results/
real-outcomes/seed-<seed>/`` and reused (``--fresh`` makes them again).

``--train-prior`` trains the prior the gates decide with before their own store has the history
to train one (``plugin/airflow_graphlets/prune/prior/``), on the first development seed's store
with the gate, and writes it into the package; nothing is replayed then.

Run: ``make bench-prune`` or ``.venv/bin/python benchmarks/prune_real_outcomes.py [--seeds 101,102]
[--develop] [--pipelines 48] [--fresh] [--json FILE] [--figures DIR] [--train-prior]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "real-outcomes")
sys.path.insert(0, HERE)

from real_outcomes.lab import PipelineRecord, live, outcomes  # noqa: E402
from real_outcomes.specs import DEVELOPMENT_SEEDS, REPORT_SEEDS, draw_pipelines  # noqa: E402

GENERATOR_VERSION = 3  # bump when the generator changes: stored benchmarks are made again
STORES = ("tfx", "tfx+gate")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", help="comma-separated benchmark seeds (default: the report seeds)")
    parser.add_argument("--develop", action="store_true", help="use the development seeds")
    parser.add_argument("--pipelines", type=int, default=48)
    parser.add_argument("--fresh", action="store_true", help="generate the benchmark stores again")
    parser.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    parser.add_argument("--figures", metavar="DIR", help="also write each replay's trade-off figure (PNG) there")
    parser.add_argument("--ablate", action="store_true",
                        help="instead, measure what each input adds: history alone, then span statistics, the "
                             "evaluator's bar and the DAG's signals (store with the gate, closed loop)")
    parser.add_argument("--hindsight", action="store_true",
                        help="instead, only the hindsight ceiling of each store and source (real_outcomes/hindsight.py)")
    parser.add_argument("--train-prior", action="store_true",
                        help="train the package's prior predictor on the first development seed, and stop")
    args = parser.parse_args()
    if args.train_prior:
        return train_prior(DEVELOPMENT_SEEDS[0], args.pipelines, args.fresh)
    seeds = ([int(s) for s in args.seeds.split(",")] if args.seeds else
             list(DEVELOPMENT_SEEDS if args.develop else REPORT_SEEDS))
    report: dict = {"pipelines": args.pipelines, "seeds": {}}
    for seed in seeds:
        began = time.perf_counter()
        records, generated = benchmark(seed, args.pipelines, args.fresh)
        runs = sum(len(r) for r in records)
        pushes = sum(int(outcomes(r).blessed.sum()) for r in records)
        print(f"\n== seed {seed}: {len(records)} pipelines, {runs} runs, {pushes / runs:.1%} pushed "
              f"({f'generated in {generated:.0f} s' if generated is not None else 'reused'})", flush=True)
        if args.ablate:
            report["seeds"][seed] = {"ablation": ablate_seed(seed, records)}
            continue
        if args.hindsight:
            report["seeds"][seed] = {"hindsight": hindsight_seed(seed, records)}
            continue
        report["seeds"][seed] = {"runs": runs, "push_rate": pushes / runs, "generate_seconds": generated,
                                 "stores": evaluate_seed(seed, records, args.figures)}
        print(f"   seed {seed} done in {time.perf_counter() - began:.0f} s", flush=True)
    if not (args.ablate or args.hindsight):
        print_summary(report)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=1)
        print(f"wrote {args.json}")
    return 0


def benchmark(seed: int, pipelines: int, fresh: bool) -> tuple[list[PipelineRecord], float | None]:
    """The seed's records and stores: made now (returns the seconds it took) or reused (None)."""
    from airflow_graphlets.store.uri import parse_store_uri
    from real_outcomes.tfx_store import write_stores

    work = os.path.join(RESULTS, f"seed-{seed}")
    saved = os.path.join(work, "records.pkl")
    stamp = {"generator": GENERATOR_VERSION, "pipelines": pipelines}
    if not fresh and os.path.exists(saved):
        with open(saved, "rb") as handle:
            kept = pickle.load(handle)
        if kept.get("stamp") == stamp:
            return kept["records"], None
    began = time.perf_counter()
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1), initializer=_one_thread) as pool:
        records = list(pool.map(live, draw_pipelines(seed, pipelines)))
    write_stores(records, {name: parse_store_uri(f"sqlite:///{_store_path(work, name)}") for name in STORES},
                 os.path.join(work, "artifacts"))
    lean = [dataclasses.replace(r, spans=[]) for r in records]  # closed loop needs the scores, not the rows
    with open(saved, "wb") as handle:
        pickle.dump({"stamp": stamp, "records": lean}, handle)
    return lean, time.perf_counter() - began


def train_prior(seed: int, pipelines: int, fresh: bool) -> int:
    """Train the prior on the development seed's store with the gate and write it into the package."""
    from airflow_graphlets.graphlets.bulk_reader import read_graphlets
    from airflow_graphlets.prune.evaluate import Inputs, PolicySettings, train_predictor
    from airflow_graphlets.prune.prior import PRIOR_PATH
    from airflow_graphlets.store.uri import parse_store_uri

    benchmark(seed, pipelines, fresh)
    config = parse_store_uri(f"sqlite:///{_store_path(os.path.join(RESULTS, f'seed-{seed}'), 'tfx+gate')}")
    # The bare probability: what a run costs is not comparable between deployments.
    settings = PolicySettings(cost_aware=False, staleness_hours=0.0)
    prior = train_predictor(read_graphlets(config), Inputs.read(config), settings)
    os.makedirs(os.path.dirname(PRIOR_PATH), exist_ok=True)
    prior.save(PRIOR_PATH)
    print(f"wrote {PRIOR_PATH}: {prior.version}, trained on {prior.trained_rows} runs of seed {seed} "
          f"({prior.push_rate:.1%} pushed), threshold {prior.threshold:.3g}")
    return 0


def _one_thread() -> None:
    # Two worker processes on two cores: scikit-learn's OpenMP threads would fight over them
    # (a histogram gradient-boosting fit ran ten times slower that way). threadpoolctl limits only
    # the runtimes already loaded, so load scikit-learn's OpenMP runtime first; the variable covers
    # any loaded later.
    os.environ["OMP_NUM_THREADS"] = "1"
    import sklearn.ensemble  # noqa: F401  (loads libgomp)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _store_path(work: str, name: str) -> str:
    return os.path.join(work, name.replace("+", "-") + ".sqlite")


def evaluate_seed(seed: int, records: list[PipelineRecord], figures: str | None = None) -> dict:
    """Recorded-outcome and closed-loop replays of both stores of one seed (with ``figures``, a
    directory, each replay's trade-off figure is written there too)."""
    from airflow_graphlets.graphlets.bulk_reader import read_graphlets
    from airflow_graphlets.prune.evaluate import Inputs, evaluate
    from airflow_graphlets.prune.report import write_png
    from airflow_graphlets.store.uri import parse_store_uri
    from real_outcomes.closed_loop import ClosedLoop

    work = os.path.join(RESULTS, f"seed-{seed}")
    found = {}
    for name in STORES:
        config = parse_store_uri(f"sqlite:///{_store_path(work, name)}")
        extraction, inputs = read_graphlets(config), Inputs.read(config)
        with_signals = name.endswith("+gate")
        for source_name, source in (("recorded", None),
                                    ("closed loop", lambda runs, signals=with_signals: ClosedLoop(runs, records, signals))):
            began = time.perf_counter()
            evaluation = evaluate(extraction, inputs, source=source, source_name=source_name)
            document = evaluation.to_json_document()
            document["hindsight"] = ceiling(extraction, inputs, evaluation, source)
            found[f"{name} / {source_name}"] = document
            if figures:
                slug = f"seed-{seed}-{name}-{source_name}".replace("+", "-").replace(" ", "-")
                write_png(evaluation, os.path.join(figures, f"{slug}.png"))
            print_evaluation(f"{name} / {source_name}", document, time.perf_counter() - began)
    return found


def ceiling(extraction, inputs, evaluation, source) -> dict:
    """What the hindsight policy reaches on this replay (``real_outcomes/hindsight.py``)."""
    return _hindsight(extraction, inputs, evaluation.evaluate_from, source, evaluation.settings.guardrails)


def _hindsight(extraction, inputs, evaluate_from: float | None, source, guardrails=None) -> dict:
    """The hindsight replay from ``evaluate_from`` (the middle of the period when None), as a plain dict."""
    from airflow_graphlets.prune.evaluate import PolicySettings, store_runs
    from real_outcomes.hindsight import hindsight

    runs, _ = store_runs(extraction, inputs)
    if evaluate_from is None:  # as evaluate() splits the period
        evaluate_from = PolicySettings().evaluation_start(runs)
    result = hindsight(runs, evaluate_from, source(runs) if source else None,
                       guardrails or PolicySettings().guardrails)
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in result.as_dict().items()}


def hindsight_seed(seed: int, records: list[PipelineRecord]) -> dict:
    """The hindsight ceiling of both stores of one seed, recorded and in closed loop."""
    from airflow_graphlets.graphlets.bulk_reader import read_graphlets
    from airflow_graphlets.prune.evaluate import Inputs
    from airflow_graphlets.store.uri import parse_store_uri
    from real_outcomes.closed_loop import ClosedLoop

    found = {}
    for name in STORES:
        config = parse_store_uri(f"sqlite:///{_store_path(os.path.join(RESULTS, f'seed-{seed}'), name)}")
        extraction, inputs = read_graphlets(config), Inputs.read(config)
        signals = name.endswith("+gate")
        for source_name, source in (("recorded", None),
                                    ("closed loop", lambda runs, s=signals: ClosedLoop(runs, records, s))):
            r = found[f"{name} / {source_name}"] = _hindsight(extraction, inputs, None, source)
            print(f"   {name + ' / ' + source_name:<24} hindsight saves {r['compute_saved_share']:6.1%}, keeps "
                  f"{r['pushes_kept_share']:6.1%}, age {r['age_increase']:+6.1%} ({r['forced_by_guardrails']} forced by the "
                  "guardrails)", flush=True)
    return found


def ablate_seed(seed: int, records: list[PipelineRecord]) -> dict:
    """The learned default in closed loop on the store with the gate, given more and more of what
    the store holds besides graphlets."""
    from airflow_graphlets.graphlets.bulk_reader import read_graphlets
    from airflow_graphlets.prune.evaluate import Inputs, evaluate
    from airflow_graphlets.store.uri import parse_store_uri
    from real_outcomes.closed_loop import ClosedLoop

    config = parse_store_uri(f"sqlite:///{_store_path(os.path.join(RESULTS, f'seed-{seed}'), 'tfx+gate')}")
    extraction, full = read_graphlets(config), Inputs.read(config)
    steps = {
        "history": (Inputs(full.drift), False),
        "+ span statistics": (Inputs(full.drift, statistics=full.statistics), False),
        "+ evaluator's bar": (Inputs(full.drift, statistics=full.statistics, bars=full.bars), False),
        "+ the DAG's signals": (full, True),
    }
    found = {}
    for name, (inputs, signals) in steps.items():
        evaluation = evaluate(extraction, inputs, source=lambda runs, s=signals: ClosedLoop(runs, records, s),
                              source_name="closed loop")
        learned = evaluation.policies[0]
        ahead = [c.ahead for c in evaluation.comparisons if c.ahead is not None]
        found[name] = {"compute_saved_share": learned.compute_saved_share,
                       "pushes_kept_share": learned.pushes_kept_share, "age_increase": learned.age_increase,
                       "ahead": sum(ahead), "compared": len(ahead)}
        print(f"   {name:<22} saved {learned.compute_saved_share:6.1%}  kept {learned.pushes_kept_share:6.1%}  "
              f"age {learned.age_increase:+6.1%}  ahead of {sum(ahead)}/{len(ahead)} baselines", flush=True)
    return found


def print_evaluation(title: str, document: dict, seconds: float) -> None:
    learned = document["policies"][0]
    point = document["operating_point"]
    print(f"\n-- {title} ({seconds:.0f} s): threshold {document['threshold']:.3g}, target "
          f"{point['target']:.0%}, cross-validated {point['cross_validated_pushes_kept'] or 0:.1%}, "
          f"achieved {learned['pushes_kept_share']:.1%}; lacking: {', '.join(document['features_lacking']) or 'none'}")
    print(f"   {'policy':<74} {'saved':>7} {'kept':>7} {'age +':>7}")
    for r in document["policies"]:
        print(f"   {r['policy'][:74]:<74} {r['compute_saved_share']:7.1%} {r['pushes_kept_share']:7.1%} "
              f"{r['age_increase']:+7.1%}")
    for c in document["comparisons"]:
        at = "n/a" if c["learned_saved"] is None else f"{c['learned_saved']:.1%} ({'ahead' if c['ahead'] else 'BEHIND'})"
        print(f"   vs {c['baseline'][:50]:<50} at {c['pushes_kept_share']:.1%} kept: {c['baseline_saved']:.1%} | learned {at}")
    if "hindsight" in document:
        r = document["hindsight"]
        print(f"   {r['policy'][:74]:<74} {r['compute_saved_share']:7.1%} {r['pushes_kept_share']:7.1%} "
              f"{r['age_increase']:+7.1%}")
    held = document.get("held_out_pipelines") or {}
    if "policies" in held:
        r = held["policies"][0]
        print(f"   held-out pipelines ({len(held['pipelines'])}): saved {r['compute_saved_share']:.1%} kept "
              f"{r['pushes_kept_share']:.1%} age {r['age_increase']:+.1%}")


def print_summary(report: dict) -> None:
    """The learned default against the targets, per store and source, averaged over seeds."""
    rows: dict[str, list[dict]] = {}
    for seed in report["seeds"].values():
        for title, document in seed["stores"].items():
            rows.setdefault(title, []).append(document)
    print("\n== summary over seeds (learned default; targets: saved >= 50 %, kept >= 90 %, age <= +10 %)")
    for title, documents in rows.items():
        learned = [d["policies"][0] for d in documents]
        ahead = sum(bool(c["ahead"]) for d in documents for c in d["comparisons"])
        compared = sum(c["ahead"] is not None for d in documents for c in d["comparisons"])
        saved, kept, age = (sum(r[key] for r in learned) / len(learned)
                            for key in ("compute_saved_share", "pushes_kept_share", "age_increase"))
        ceilings = [d["hindsight"]["compute_saved_share"] for d in documents if "hindsight" in d]
        print(f"   {title:<24} saved {saved:6.1%}  kept {kept:6.1%}  age {age:+6.1%}  "
              f"ahead of {ahead}/{compared} baseline comparisons"
              + (f"; hindsight saves {sum(ceilings) / len(ceilings):.1%}" if ceilings else ""))


if __name__ == "__main__":
    sys.exit(main())
