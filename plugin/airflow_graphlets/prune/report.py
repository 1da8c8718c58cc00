"""``graphlets replay``'s outputs: a terminal table, and the trade-off curve as PNG or HTML."""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import os
from types import SimpleNamespace

from airflow_graphlets.prune.evaluate import Evaluation

_COLUMNS = ("policy", "skipped", "compute saved", "pushes kept", "model age", "age +", "skipped pushes",
            "forced runs")


def to_text(evaluation: Evaluation) -> str:
    """Policies side by side, then the curve."""
    since = dt.datetime.fromtimestamp(evaluation.evaluate_from, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
    point = evaluation.operating_point
    if evaluation.given_predictor:
        how = f"the given predictor {evaluation.given_predictor}'s own, not trained on this store"
    elif point.cross_validated_pushes_kept is not None:
        how = (f"chosen by time-ordered cross-validation over {point.folds} slices of the training period, where it "
               f"kept at least {point.cross_validated_pushes_kept:.1%} of pushes")
    else:
        how = "chosen on the training period itself: too little history to validate one out of sample"
    learned = evaluation.policies[0]
    lines = [
        f"Replay of {evaluation.store} ({evaluation.source} outcomes)",
        (f"  {evaluation.runs} training runs; predictor trained on the {evaluation.train_runs} before {since} UTC, "
         f"{evaluation.evaluated_runs} replayed after"),
        (f"  operating threshold {evaluation.threshold:.3f}, {how}; target {point.target:.0%} of pushes kept, "
         f"achieved {learned.pushes_kept_share:.1%} on the replayed period"),
        f"  span statistics: {evaluation.statistics}",
    ]
    if evaluation.features_lacking:
        lines.append(f"  this store holds nothing for: {', '.join(evaluation.features_lacking)} (unknown to the "
                     "predictor, which decides without them)")
    lines.append("")
    lines += _table([_row(r) for r in evaluation.policies])
    lines += ["", "Against each baseline, at the baseline's share of pushes kept (learned: on its trade-off curve)"]
    lines += [f"  {c.baseline}: keeps {c.pushes_kept_share:.1%}, saves {c.baseline_saved:.1%}; learned saves "
              + (f"{c.learned_saved:.1%} ({'ahead' if c.ahead else 'BEHIND'})" if c.learned_saved is not None
                 else "n/a (outside the learned curve)") for c in evaluation.comparisons]
    held = evaluation.held_out_pipelines
    if held and "policies" in held:
        lines += ["", f"Held-out pipelines ({len(held['pipelines'])} the predictor never saw), replayed period"]
        lines += _table([_row_dict(r) for r in held["policies"]])
    lines += ["", "Trade-off over thresholds (learned policy)"]
    lines += _table([{"threshold": f"{t:.3f}", **_row(r)} for t, r in evaluation.curve],
                    ("threshold", *_COLUMNS[1:]))
    lines += ["", ("compute saved: of the wasted compute of the replayed period; age +: the deployed model's "
                   "time-averaged age over never skipping.")]
    return "\n".join(lines) + "\n"


def _row_dict(values: dict) -> dict:
    """A row of the table from a replay result as the JSON document holds it."""
    return _row(SimpleNamespace(**values))


def _row(r) -> dict:
    return {"policy": r.policy, "skipped": f"{r.skipped}/{r.decided}", "compute saved": f"{r.compute_saved_share:.1%}",
            "pushes kept": f"{r.pushes_kept_share:.1%}", "model age": f"{r.mean_model_age_hours:.1f} h",
            "age +": f"{r.age_increase:+.1%}", "skipped pushes": str(r.skipped_pushes),
            "forced runs": str(r.forced_by_guardrails)}


def _table(rows: list[dict], columns=_COLUMNS) -> list[str]:
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    out = ["  " + "  ".join(f"{c:<{widths[c]}}" for c in columns), "  " + "  ".join("-" * widths[c] for c in columns)]
    out += ["  " + "  ".join(f"{r[c]!s:<{widths[c]}}" for c in columns) for r in rows]
    return out


def write_png(evaluation: Evaluation, path: str) -> str:
    """The trade-off figure at ``path``; returns the path."""
    fig = _figure(evaluation)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def write_html(evaluation: Evaluation, path: str) -> str:
    """A self-contained page: the figure and the tables (store names escaped)."""
    import matplotlib.pyplot as plt

    fig = _figure(evaluation)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    image = base64.b64encode(buffer.getvalue()).decode()
    page = ("<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>Pruning replay — {html.escape(evaluation.store)}</title>"
            "<style>body{font-family:system-ui,sans-serif;margin:2em}pre{background:#f8f9fa;padding:1em}</style>"
            f"</head><body><h1>Pruning replay of {html.escape(evaluation.store)}</h1>"
            f"<img alt='trade-off' src='data:image/png;base64,{image}'>"
            f"<pre>{html.escape(to_text(evaluation))}</pre></body></html>")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(page)
    return path


def _figure(evaluation: Evaluation):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.6))
    curve = [r for _, r in evaluation.curve]
    left.plot([100 * r.pushes_kept_share for r in curve], [100 * r.compute_saved_share for r in curve], "o-",
              label="learned policy (thresholds)")
    for r in evaluation.policies[1:]:
        left.plot(100 * r.pushes_kept_share, 100 * r.compute_saved_share, "s", label=r.policy)
    left.plot(100 * evaluation.policies[0].pushes_kept_share, 100 * evaluation.policies[0].compute_saved_share, "*",
              markersize=14, label="operating point")
    left.set_xlabel("pushes kept (%)")
    left.set_ylabel("wasted compute avoided (%)")
    left.legend(fontsize=8)
    right.plot([100 * r.age_increase for r in curve], [100 * r.compute_saved_share for r in curve], "o-",
               label="learned policy (thresholds)")
    for r in evaluation.policies[1:]:
        right.plot(100 * r.age_increase, 100 * r.compute_saved_share, "s", label=r.policy)
    right.plot(100 * evaluation.policies[0].age_increase, 100 * evaluation.policies[0].compute_saved_share, "*",
               markersize=14, label="operating point")
    right.set_xlabel("deployed model's average age, increase over never skipping (%)")
    right.set_ylabel("wasted compute avoided (%)")
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig
