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

from airflow_graphlets.units import axis_unit

COLORS = {
    "pushed": "#2e7d32", "wasted": "#c62828", "pending": "#f9a825", "unattributed": "#90a4ae", "saved": "#1565c0",
    "not_pushed": "#c62828", "failed": "#424242", "running": "#f9a825", "skip": "#1565c0", "blessed": "#ef6c00",
}


def _fmt_day(day: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(day * 86400))


def stacked_bars(buckets: Sequence[tuple[int, dict[str, float]]], series: Sequence[str], *, width: int = 900,
                 height: int = 220, unit: Callable[[float], str] | None = None) -> Markup:
    """Bars over time, one stack per bucket (``(day, {series: value})``), ``series`` bottom up.
    Values are seconds unless ``unit`` labels them otherwise; the axis unit fits the tallest bar."""
    if not buckets:
        return Markup('<p class="empty">No compute recorded in this range.</p>')
    left, bottom, top = 64, 22, 8
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = max(sum(values.get(s, 0.0) for s in series) for _, values in buckets) or 1.0
    unit = unit or axis_unit(peak)
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
    """The graphlet's provenance subgraph, left to right: each execution one column after the
    furthest execution it read from, its output artifacts stacked under it; spans first, the push
    last. ``execution_link(node)`` gives an execution's Airflow page (None: no link)."""
    producer: dict[int, int] = {}
    readers: dict[int, list[int]] = {e: [] for e in graph.executions}
    for (src_kind, src), (dst_kind, dst) in graph.edges:
        if src_kind == "e" and dst_kind == "a":
            producer.setdefault(dst, src)
    for (src_kind, src), (dst_kind, dst) in graph.edges:
        if src_kind == "a" and dst_kind == "e" and src in producer and producer[src] != dst:
            readers[dst].append(producer[src])
    column: dict[int, int] = {}

    def depth(e: int, trail: frozenset = frozenset()) -> int:  # provenance has no cycles; the trail guards anyway
        if e not in column:
            column[e] = 1 + max((depth(u, trail | {e}) for u in readers[e] if u not in trail), default=-1)
        return column[e]

    stacks: dict[int, list[tuple[str, int]]] = {}
    orphans = sorted(a for a in graph.artifacts if a not in producer)
    shift = 1 if orphans else 0
    if orphans:
        stacks[0] = [("a", a) for a in orphans]
    for e in sorted(graph.executions):
        stacks.setdefault(depth(e) + shift, []).append(("e", e))
        stacks[column[e] + shift].extend(("a", a) for a in sorted(graph.artifacts) if producer.get(a) == e)
    stacks, alias, groups = _grouped(stacks, graph)
    edges = list(dict.fromkeys((alias.get(s, s), alias.get(t, t)) for s, t in graph.edges))
    col_w, row_h, box_w, box_h = 176, 54, 156, 40
    height = max(len(c) for c in stacks.values()) * row_h + 16
    width = (max(stacks) + 1) * col_w + 16
    position = {n: (8 + c * col_w, 8 + r * row_h) for c, nodes in stacks.items() for r, n in enumerate(nodes)}
    parts = [f'<svg class="graph" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
             f'xmlns="http://www.w3.org/2000/svg"><defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" '
             f'markerWidth="6" markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#78909c"/></marker></defs>']
    for source, target in edges:
        if source in position and target in position and source != target:
            (x1, y1), (x2, y2) = position[source], position[target]
            if x1 == x2:  # an execution and its own output, stacked: a short drop down the left side
                parts.append(f'<path d="M{x1 + 10},{y1 + box_h} L{x2 + 10},{y2}" stroke="#b0bec5" '
                             f'marker-end="url(#arrow)"/>')
                continue
            x1, y1, y2 = x1 + box_w, y1 + box_h / 2, y2 + box_h / 2
            mid = (x1 + x2) / 2
            parts.append(f'<path d="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}" fill="none" stroke="#78909c" '
                         f'marker-end="url(#arrow)"/>')
    for (kind, ident), (x, y) in position.items():
        if kind == "g":
            parts.append(_group_box(groups[ident], graph, x, y, box_w, box_h))
            continue
        if kind == "e":
            e = graph.executions[ident]
            title = e.task_id or e.type_name.rsplit(".", 1)[-1]
            sub = f"{e.type_name.rsplit('.', 1)[-1]} · {e.state.lower()}"
            fill = {"trainer": "#bbdefb", "downstream": "#ffe0b2"}.get(e.role, "#eceff1")
            tip = f"execution {e.id}: {e.type_name}, {e.state}" + (f", task {e.task_id} try {e.try_number}" if e.task_id else "")
            shape = f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="3" fill="{fill}" stroke="#546e7a"/>'
            href = execution_link(e)
        else:
            a = graph.artifacts[ident]
            title = a.type_name + (f" span {a.span}" if a.span is not None else "")
            sub = f"artifact {a.id}"
            tip = f"artifact {a.id}: {a.type_name}" + (f", span {a.span}" if a.span is not None else "") + f" {a.uri}"
            fill = "#c8e6c9" if a.type_name in ("PushedModel", "ModelBlessing") else "#ffffff"
            shape = f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="16" fill="{fill}" stroke="#90a4ae"/>'
            href = None
        label = (f'<text x="{x + 9}" y="{y + 17}" font-size="12" font-weight="600">{escape(_clip(title, 22))}</text>'
                 f'<text x="{x + 9}" y="{y + 32}" font-size="10" fill="#455a64">{escape(_clip(sub, 27))}</text>')
        body = f'<title>{escape(tip)}</title>{shape}{label}'
        if href:
            parts.append(f'<a class="node execution" href="{escape(href)}" target="_top" data-id="{ident}">{body}</a>')
        else:
            parts.append(f'<g class="node {"execution" if kind == "e" else "artifact"}" data-id="{ident}">{body}</g>')
    parts.append("</svg>")
    return Markup("".join(parts))


GROUP_AT = 5  # this many like nodes in one column are drawn as one box


def _grouped(stacks: dict[int, list], graph) -> tuple[dict[int, list], dict, dict]:
    """The columns with each run of at least :data:`GROUP_AT` like nodes (executions of one type
    and role, artifacts of one type) replaced by one group node: a window of 15 spans draws its
    per-span chains as a few boxes, not 15 rows of them. Returns the new columns, each member's
    group key, and each group's members."""
    alias: dict = {}
    groups: dict[int, list] = {}
    out: dict[int, list] = {}
    for col, nodes in stacks.items():
        like: dict[tuple, list] = {}
        for node in nodes:
            kind, ident = node
            signature = (kind, graph.executions[ident].type_name, graph.executions[ident].role) if kind == "e" \
                else (kind, graph.artifacts[ident].type_name)
            like.setdefault(signature, []).append(node)
        placed: set = set()
        out[col] = []
        for node in nodes:
            kind, ident = node
            signature = (kind, graph.executions[ident].type_name, graph.executions[ident].role) if kind == "e" \
                else (kind, graph.artifacts[ident].type_name)
            members = like[signature]
            if len(members) < GROUP_AT:
                out[col].append(node)
            elif signature not in placed:
                placed.add(signature)
                key = ("g", len(groups))
                groups[key[1]] = members
                alias.update({member: key for member in members})
                out[col].append(key)
    return out, alias, groups


def _group_box(members: list, graph, x: float, y: float, box_w: int, box_h: int) -> str:
    kind = members[0][0]
    if kind == "e":
        nodes = [graph.executions[i] for _, i in members]
        title = f"{len(nodes)} × {nodes[0].task_id or nodes[0].type_name.rsplit('.', 1)[-1]}"
        states = sorted({n.state.lower() for n in nodes})
        sub = f"{nodes[0].type_name.rsplit('.', 1)[-1]} · {', '.join(states)}"
        tip = f"{len(nodes)} executions of {nodes[0].type_name}: ids {', '.join(str(n.id) for n in nodes)}"
        fill, radius = "#eceff1", 3
    else:
        nodes = [graph.artifacts[i] for _, i in members]
        spans = sorted(n.span for n in nodes if n.span is not None)
        title = f"{len(nodes)} × {nodes[0].type_name}"
        sub = f"spans {spans[0]}–{spans[-1]}" if spans else f"{len(nodes)} artifacts"
        tip = f"{len(nodes)} {nodes[0].type_name} artifacts: ids {', '.join(str(n.id) for n in nodes)}"
        fill, radius = "#ffffff", 16
    # A stacked look: two offset outlines behind the box say "several".
    shadows = "".join(f'<rect x="{x + d}" y="{y - d}" width="{box_w}" height="{box_h}" rx="{radius}" fill="{fill}" '
                      f'stroke="#b0bec5"/>' for d in (6, 3))
    return (f'<g class="node group" data-kind="{"execution" if kind == "e" else "artifact"}" '
            f'data-members="{len(nodes)}"><title>{escape(tip)}</title>{shadows}'
            f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="{radius}" fill="{fill}" stroke="#546e7a"/>'
            f'<text x="{x + 9}" y="{y + 17}" font-size="12" font-weight="600">{escape(_clip(title, 22))}</text>'
            f'<text x="{x + 9}" y="{y + 32}" font-size="10" fill="#455a64">{escape(_clip(sub, 27))}</text></g>')


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
