"""The paper's figures for an :class:`~.analyses.Analysis`: one PNG, or a self-contained HTML page.

Distributions are drawn as CDFs (lifespan, cadence, pushes, overlap) or histograms (spans per
graphlet), compute as bars by operator kind split into pushed and wasted, and waste over time as
daily stacked areas. Matplotlib renders off-screen (Agg); the HTML page embeds the figures as
base64 PNGs and escapes every name that comes from the store.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import ScalarFormatter

from airflow_graphlets.graphlets.analyses import Analysis
from airflow_graphlets.graphlets.reports import to_text
from airflow_graphlets.units import duration, unit_for

_PUSHED, _WASTED, _OTHER = "#2b8a3e", "#c92a2a", "#adb5bd"
_CDFS = (
    ("lifespan_days", "Pipeline lifespan", "days"),
    ("models_per_day", "Models trained per day", "models / day, per pipeline"),
    ("hours_between_pushes", "Time between pushes", "hours"),
    ("span_overlap", "Span overlap of consecutive graphlets", "Jaccard similarity"),
    ("push_rate", "Push rate per pipeline", "pushed / finished graphlets"),
)
# What each figure tells, under it in the HTML report (the title is on the figure itself).
CAPTIONS = {
    "Pipeline lifespan": "How long pipelines have been training: first to last graphlet, as a CDF over pipelines.",
    "Models trained per day": "Training cadence: graphlets per day of each pipeline's lifespan.",
    "Time between pushes": "Deployment cadence: time between consecutive pushes of a pipeline.",
    "Span overlap of consecutive graphlets": "How much of its input a graphlet shares with the one before "
                                             "(1: the same spans, 0: none).",
    "Push rate per pipeline": "Share of each pipeline's finished graphlets that reached deployment.",
    "Input spans per graphlet": "Window sizes: how many data spans each trainer read.",
    "Compute by operator kind": "Where compute went, split by whether its graphlet was pushed.",
    "Wasted compute over time": "Daily compute of graphlets that were and were not pushed.",
}


def panels() -> list[tuple[str, Callable[[plt.Axes, Analysis], None]]]:
    """Every figure: its title and the function that draws it on a Matplotlib axes."""
    out: list[tuple[str, Callable[[plt.Axes, Analysis], None]]] = [
        (title, lambda ax, analysis, key=key, xlabel=xlabel: _cdf(ax, analysis.samples[key], xlabel))
        for key, title, xlabel in _CDFS
    ]
    out += [("Input spans per graphlet", _spans), ("Compute by operator kind", _by_kind),
            ("Wasted compute over time", _over_time)]
    return out


def write_png(analysis: Analysis, path: str) -> str:
    """All figures as one PNG grid at ``path``; returns the path."""
    drawn = panels()
    cols = 2
    rows = (len(drawn) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(13, 3.9 * rows))
    for ax, (title, draw) in zip(axes.flat, drawn):
        draw(ax, analysis)
        _plain_numbers(ax)
        ax.set_title(title)
    for ax in list(axes.flat)[len(drawn):]:
        ax.axis("off")
    fig.tight_layout()
    _ensure_parent(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_html(analysis: Analysis, path: str) -> str:
    """A self-contained HTML report at ``path`` (headline figures, the charts in a grid, each
    with a sentence on what it shows, then the text tables); returns the path."""
    totals = analysis.totals
    headline = [("graphlets", f"{totals.get('graphlets', 0):,}"), ("pipelines", f"{totals.get('pipelines', 0):,}"),
                ("pushed", _share(totals.get("push_rate"))), ("compute wasted", _share(totals.get("waste_share"))),
                ("compute", duration(totals.get("compute_seconds")))]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Model graphlets — {html.escape(analysis.store)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1400px;padding:0 1em;color:#212529}"
        ".cards{display:flex;flex-wrap:wrap;gap:.8em;margin:1em 0}.card{background:#f1f3f5;border-radius:6px;"
        "padding:.6em 1em}.card b{display:block;font-size:1.5em}.grid{display:grid;gap:1.2em;"
        "grid-template-columns:repeat(auto-fill,minmax(430px,1fr))}figure{margin:0}figure img{width:100%}"
        "figcaption{color:#495057;font-size:.9em}pre{background:#f8f9fa;padding:1em;overflow:auto}</style>",
        "</head><body>",
        f"<h1>Model graphlets of {html.escape(analysis.store)}</h1>",
        "<div class='cards'>" + "".join(f"<div class='card'><b>{html.escape(value)}</b>{html.escape(name)}</div>"
                                       for name, value in headline) + "</div>",
        "<div class='grid'>",
    ]
    for title, draw in panels():
        fig, ax = plt.subplots(figsize=(6, 3.6))
        draw(ax, analysis)
        _plain_numbers(ax)
        ax.set_title(title)
        fig.tight_layout()
        data = base64.b64encode(_png_bytes(fig)).decode()
        parts.append(f"<figure><img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>"
                     f"<figcaption>{html.escape(CAPTIONS.get(title, ''))}</figcaption></figure>")
    parts.append("</div>")
    parts.append(f"<h2>Tables</h2><pre>{html.escape(to_text(analysis, top=50))}</pre></body></html>")
    _ensure_parent(path)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(parts))
    return path


def _share(value) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def _plain_numbers(ax: plt.Axes) -> None:
    """Tick labels as plain numbers: no offset ("1e-5+1.1e1") when values are nearly equal; an
    axis whose data all but coincide is widened around them so its ticks still differ."""
    for axis, limits, setter in ((ax.xaxis, ax.get_xlim(), ax.set_xlim), (ax.yaxis, ax.get_ylim(), ax.set_ylim)):
        formatter = axis.get_major_formatter()
        if isinstance(formatter, ScalarFormatter):
            formatter.set_useOffset(False)
            low, high = limits
            middle = (low + high) / 2
            if high - low < 1e-3 * max(abs(middle), 1e-12):  # e.g. every lifespan 11 days, to the second
                half = max(abs(middle) * 0.05, 0.5)
                setter(middle - half, middle + half)


def _cdf(ax: plt.Axes, values: np.ndarray, xlabel: str) -> None:
    data = np.sort(values[~np.isnan(values)]) if len(values) else values
    if len(data):
        ax.step(data, np.arange(1, len(data) + 1) / len(data), where="post", color="#1c7ed6")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction ≤ x")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)


def _spans(ax: plt.Axes, analysis: Analysis) -> None:
    spans = analysis.samples["spans_per_graphlet"]
    if len(spans):
        bins = np.arange(spans.min(), spans.max() + 2) - 0.5 if spans.max() - spans.min() < 60 else 40
        ax.hist(spans, bins=bins, color="#1c7ed6")
    ax.set_xlabel("spans")
    ax.set_ylabel("graphlets")


def _by_kind(ax: plt.Axes, analysis: Analysis) -> None:
    items = sorted(analysis.compute_by_kind.items(), key=lambda kv: -sum(kv[1].values()))
    kinds = [k for k, _ in items]
    size, label = unit_for(max((sum(v.values()) for _, v in items), default=0.0))
    hours = {o: np.asarray([v[o] for _, v in items]) / size for o in ("pushed", "wasted", "pending", "unattributed")}
    ax.bar(kinds, hours["pushed"], color=_PUSHED, label="led to a push")
    ax.bar(kinds, hours["wasted"], bottom=hours["pushed"], color=_WASTED, label="wasted")
    ax.bar(kinds, hours["pending"] + hours["unattributed"], bottom=hours["pushed"] + hours["wasted"], color=_OTHER,
           label="pending / outside graphlets")
    ax.set_ylabel(f"compute ({label})")
    ax.tick_params(axis="x", rotation=45)
    ax.legend(fontsize=8)


def _over_time(ax: plt.Axes, analysis: Analysis) -> None:
    days = analysis.waste_by_day
    size, label = unit_for(max((d["pushed"] + d["wasted"] for d in days), default=0.0))
    if days:
        x = np.asarray([np.datetime64(d["day"]) for d in days])
        pushed = np.asarray([d["pushed"] for d in days]) / size
        wasted = np.asarray([d["wasted"] for d in days]) / size
        ax.stackplot(x, pushed, wasted, colors=[_PUSHED, _WASTED], labels=["led to a push", "wasted"])
        ax.legend(fontsize=8, loc="upper left")
    ax.set_ylabel(f"compute per day ({label})")
    ax.tick_params(axis="x", rotation=30)


def _png_bytes(fig: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def _ensure_parent(path: str) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
