"""Charts and graphs drawn as inline SVG on the server: no script, no CDN, nothing to load.

Every text that reaches the SVG goes through :func:`html.escape` here (DAG ids, task ids, type
names, URIs can hold markup); the functions return :class:`markupsafe.Markup` so templates do
not escape the drawing twice.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from html import escape

from markupsafe import Markup

COLORS = {
    "pushed": "#2e7d32", "wasted": "#c62828", "pending": "#f9a825", "unattributed": "#90a4ae", "saved": "#1565c0",
    "not_pushed": "#c62828", "failed": "#424242", "running": "#f9a825", "skip": "#1565c0", "blessed": "#ef6c00",
}


def _fmt_day(day: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(day * 86400))


def stacked_bars(buckets: Sequence[tuple[int, dict[str, float]]], series: Sequence[str], *, width: int = 900,
                 height: int = 220, unit: Callable[[float], str] = lambda v: f"{v / 3600:,.1f} h") -> Markup:
    """Bars over time, one stack per bucket (``(day, {series: value})``), ``series`` bottom up."""
    if not buckets:
        return Markup('<p class="empty">No compute recorded in this range.</p>')
    left, bottom, top = 64, 22, 8
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = max(sum(values.get(s, 0.0) for s in series) for _, values in buckets) or 1.0
    bar = plot_w / len(buckets)
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
             f'preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">']
    for k in range(5):  # horizontal grid with labels
        value = peak * k / 4
        y = top + plot_h - plot_h * k / 4
        parts.append(f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e0e0e0"/>'
                     f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{escape(unit(value))}</text>')
    every = max(1, math.ceil(len(buckets) / 10))
    for i, (day, values) in enumerate(buckets):
        x = left + i * bar
        y = top + plot_h
        tip = escape(_fmt_day(day) + ": " + ", ".join(f"{s} {unit(values.get(s, 0.0))}" for s in series))
        parts.append(f'<g class="bar" data-day="{day}"><title>{tip}</title>')
        for s in series:
            h = plot_h * values.get(s, 0.0) / peak
            if h > 0:
                y -= h
                parts.append(f'<rect x="{x + 0.5:.1f}" y="{y:.2f}" width="{max(bar - 1, 0.5):.2f}" height="{h:.2f}" '
                             f'fill="{COLORS.get(s, "#888")}"/>')
        parts.append("</g>")
        if i % every == 0:
            parts.append(f'<text x="{x:.1f}" y="{height - 6}" font-size="11">{escape(_fmt_day(day)[5:])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def legend(series: Sequence[str]) -> Markup:
    """Coloured keys for ``series``."""
    return Markup("".join(f'<span class="key"><i style="background:{COLORS.get(s, "#888")}"></i>{escape(s)}</span>'
                          for s in series))


def timeline(graphlets: Sequence, decisions: Sequence, link: Callable[[int], str], *, width: int = 900) -> Markup:
    """One DAG's training runs on a time axis: trained graphlets on one lane (coloured by what
    became of them, pushes marked), gate skips on another. ``link(trainer_id)`` gives each mark's
    page."""
    times = [g.trainer_start for g in graphlets] + [d.decided_at for d in decisions]
    if not times:
        return Markup('<p class="empty">No training run recorded for this DAG yet.</p>')
    first, last = min(times), max(times)
    span = (last - first) or 1.0
    left, right, height = 80, 12, 96
    x_of = lambda t: left + (width - left - right) * (t - first) / span  # noqa: E731
    parts = [f'<svg class="chart timeline" role="img" viewBox="0 0 {width} {height}" width="100%" '
             f'xmlns="http://www.w3.org/2000/svg">',
             '<text x="0" y="28" font-size="12">trained</text><text x="0" y="62" font-size="12">skipped</text>',
             f'<line x1="{left}" x2="{width - right}" y1="24" y2="24" stroke="#e0e0e0"/>',
             f'<line x1="{left}" x2="{width - right}" y1="58" y2="58" stroke="#e0e0e0"/>']
    for g in graphlets:
        state = g.status if g.status != "not_pushed" or g.blessed != 1 else "blessed"
        tip = escape(f"{_fmt_time(g.trainer_start)} trainer {g.trainer_id}: {state.replace('_', ' ')}")
        radius = 6 if g.status == "pushed" else 4
        parts.append(f'<a href="{escape(link(g.trainer_id))}" class="run {escape(g.status)}"><title>{tip}</title>'
                     f'<circle cx="{x_of(g.trainer_start):.1f}" cy="24" r="{radius}" fill="{COLORS.get(state, "#888")}" '
                     f'fill-opacity="0.85"/></a>')
    for d in decisions:
        if d.decision != "skip":
            continue
        p = "" if d.probability is None else f", p(push) {d.probability:.2f}"
        tip = escape(f"{_fmt_time(d.decided_at)} gate skipped run {d.run_id}{p}")
        x = x_of(d.decided_at)
        parts.append(f'<g class="skip"><title>{tip}</title><path d="M{x - 5:.1f},64 L{x + 5:.1f},64 L{x:.1f},54 Z" '
                     f'fill="{COLORS["skip"]}"/></g>')
    parts.append(f'<text x="{left}" y="{height - 6}" font-size="11">{escape(_fmt_time(first))}</text>'
                 f'<text x="{width - right}" y="{height - 6}" font-size="11" text-anchor="end">'
                 f'{escape(_fmt_time(last))}</text></svg>')
    return Markup("".join(parts))


def _fmt_time(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))


def provenance(graph, execution_link: Callable[[object], str | None]) -> Markup:
    """The graphlet's provenance subgraph, laid out left to right in layers (each node one column
    after its furthest input): spans, then what read them, down to the push."""
    nodes = [("e", i) for i in graph.executions] + [("a", i) for i in graph.artifacts]
    inputs: dict[tuple, list[tuple]] = {n: [] for n in nodes}
    for source, target in graph.edges:
        if source in inputs and target in inputs:
            inputs[target].append(source)
    layer: dict[tuple, int] = {}

    def depth(node, trail=()) -> int:  # longest path from a source; provenance has no cycles
        if node not in layer:
            layer[node] = 1 + max((depth(s, trail + (node,)) for s in inputs[node] if s not in trail), default=-1)
        return layer[node]

    for node in nodes:
        depth(node)
    columns: dict[int, list[tuple]] = {}
    for node in sorted(nodes, key=lambda n: (layer[n], n[0], n[1])):
        columns.setdefault(layer[node], []).append(node)
    col_w, row_h, box_w, box_h = 190, 62, 168, 44
    height = max(len(c) for c in columns.values()) * row_h + 20
    width = (max(columns) + 1) * col_w + 20
    position = {n: (10 + c * col_w, 10 + r * row_h) for c, column in columns.items() for r, n in enumerate(column)}
    parts = [f'<svg class="graph" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
             f'xmlns="http://www.w3.org/2000/svg"><defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" '
             f'markerWidth="6" markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#78909c"/></marker></defs>']
    for source, target in graph.edges:
        if source in position and target in position:
            (x1, y1), (x2, y2) = position[source], position[target]
            x1, y1, y2 = x1 + box_w, y1 + box_h / 2, y2 + box_h / 2
            mid = (x1 + x2) / 2
            parts.append(f'<path d="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}" fill="none" stroke="#78909c" '
                         f'marker-end="url(#arrow)"/>')
    for node, (x, y) in position.items():
        kind, ident = node
        if kind == "e":
            e = graph.executions[ident]
            title = e.task_id or e.type_name
            sub = f"{e.type_name} · {e.state.lower()}"
            fill = {"trainer": "#e3f2fd", "downstream": "#fff3e0"}.get(e.role, "#f5f5f5")
            tip = f"execution {e.id}: {e.type_name}, {e.state}" + (f", task {e.task_id} try {e.try_number}" if e.task_id else "")
            shape = f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="4" fill="{fill}" stroke="#546e7a"/>'
            href = execution_link(e)
        else:
            a = graph.artifacts[ident]
            title = a.type_name + (f" span {a.span}" if a.span is not None else "")
            sub = a.uri.rsplit("/", 2)[-1] if a.uri else f"artifact {a.id}"
            tip = f"artifact {a.id}: {a.type_name}" + (f", span {a.span}" if a.span is not None else "") + f" {a.uri}"
            fill = "#e8f5e9" if a.type_name in ("PushedModel", "ModelBlessing") else "#ffffff"
            shape = f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="18" fill="{fill}" stroke="#90a4ae"/>'
            href = None
        label = (f'<text x="{x + 8}" y="{y + 18}" font-size="12" font-weight="600">{escape(_clip(title, 24))}</text>'
                 f'<text x="{x + 8}" y="{y + 35}" font-size="10" fill="#455a64">{escape(_clip(sub, 30))}</text>')
        body = f'<title>{escape(tip)}</title>{shape}{label}'
        if href:
            parts.append(f'<a class="node execution" href="{escape(href)}" target="_top" data-id="{ident}">{body}</a>')
        else:
            parts.append(f'<g class="node {"execution" if kind == "e" else "artifact"}" data-id="{ident}">{body}</g>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
