"""An :class:`~.analyses.Analysis` as a terminal report or as versioned JSON.

The JSON document's shape is ``docs/analysis-json.md``; ``JSON_SCHEMA`` and ``JSON_VERSION``
name it, and the version goes up whenever a field changes meaning or disappears.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict
from typing import Any

from airflow_graphlets.graphlets.analyses import Analysis, Distribution

JSON_SCHEMA = "airflow-graphlets/analysis"
JSON_VERSION = 1

_DISTRIBUTION_LABELS = {
    "lifespan_days": ("pipeline lifespan", "days"),
    "runs_per_day": ("runs per day", "per pipeline"),
    "models_per_day": ("models per day", "per pipeline"),
    "push_rate": ("push rate", "per pipeline"),
    "hours_between_pushes": ("time between pushes", "hours"),
    "spans_per_graphlet": ("spans per graphlet", "spans"),
    "span_overlap": ("span overlap (Jaccard)", "consecutive graphlets"),
    "graphlet_cost_seconds": ("graphlet cost", "seconds"),
}


def to_json_document(analysis: Analysis) -> dict[str, Any]:
    """The analysis as a JSON-ready dict, in schema ``JSON_SCHEMA`` version ``JSON_VERSION``."""
    return {
        "schema": JSON_SCHEMA,
        "version": JSON_VERSION,
        "store": analysis.store,
        "reader": analysis.reader,
        "clock": analysis.clock,
        "mlmd_schema_version": analysis.schema_version,
        "period": {"first": _iso(analysis.first_time), "last": _iso(analysis.last_time)},
        "totals": analysis.totals,
        "distributions": {name: asdict(d) for name, d in analysis.distributions.items()},
        "compute_by_kind": analysis.compute_by_kind,
        "waste_by_day": analysis.waste_by_day,
        "pipelines": [asdict(p) for p in analysis.pipelines],
    }


def to_json(analysis: Analysis) -> str:
    """The JSON document as text."""
    return json.dumps(to_json_document(analysis), indent=2, sort_keys=False)


def to_text(analysis: Analysis, top: int = 15) -> str:
    """A readable terminal report: totals, distributions, compute by kind, top wasting pipelines."""
    t = analysis.totals
    lines = [
        f"Model graphlets in {analysis.store}",
        f"  period {_iso(analysis.first_time) or '-'} .. {_iso(analysis.last_time) or '-'} ({analysis.clock} clock)",
        "",
        _table(
            ["pipelines", "runs", "graphlets", "pushed", "not pushed", "failed", "running", "push rate"],
            [[t["pipelines"], t["runs"], t["graphlets"], t["pushed"], t["not_pushed"], t["failed"], t["running"],
              _pct(t["push_rate"])]],
        ),
        "",
        "Compute (each execution counted once)",
        _table(
            ["total", "in graphlets", "wasted", "waste share", "waste / all compute", "unattributed"],
            [[_dur(t["compute_seconds"]), _dur(t["graphlet_compute_seconds"]), _dur(t["wasted_seconds"]),
              _pct(t["waste_share"]), _pct(t["waste_share_of_all_compute"]), _dur(t["unattributed_seconds"])]],
        ),
        "",
        "Distributions",
        _table(
            ["measure", "of", "n", "mean", "p25", "median", "p75", "p90", "max"],
            [[label, unit, *_dist(analysis.distributions[name])] for name, (label, unit) in _DISTRIBUTION_LABELS.items()],
        ),
        "",
        "Compute by operator kind",
        _table(
            ["kind", "compute", "share", "wasted", "wasted share"],
            _kind_rows(analysis),
        ),
        "",
        f"Pipelines by wasted compute (top {min(top, len(analysis.pipelines))} of {len(analysis.pipelines)})",
        _table(
            ["pipeline", "days", "runs", "models", "pushed", "push rate", "h between pushes", "spans", "overlap",
             "compute", "wasted", "waste share"],
            [
                [p.pipeline, _num(p.lifespan_days), p.runs, p.graphlets, p.pushed, _pct(p.push_rate),
                 _num(p.median_hours_between_pushes), _num(p.mean_spans_per_graphlet), _num(p.mean_overlap),
                 _dur(p.compute_seconds), _dur(p.wasted_seconds), _pct(p.waste_share)]
                for p in sorted(analysis.pipelines, key=lambda p: (-p.wasted_seconds, p.pipeline))[:top]
            ],
        ),
    ]
    return "\n".join(lines) + "\n"


def _kind_rows(analysis: Analysis) -> list[list[str]]:
    total = sum(sum(v.values()) for v in analysis.compute_by_kind.values()) or 1.0
    rows = []
    for kind, outcomes in sorted(analysis.compute_by_kind.items(), key=lambda kv: -sum(kv[1].values())):
        spent = sum(outcomes.values())
        rows.append([kind, _dur(spent), _pct(spent / total), _dur(outcomes["wasted"]),
                     _pct(outcomes["wasted"] / spent if spent else None)])
    return rows


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    out = []
    for n, row in enumerate(cells):
        out.append("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            out.append("  " + "  ".join("-" * w for w in widths))
    return "\n".join(out)


def _cell(value: Any) -> str:
    text = "-" if value is None else str(value)
    # Pipeline names come from the store: keep control characters out of the terminal.
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _dist(d: Distribution) -> list[str]:
    return [str(d.count), *(_num(v) for v in (d.mean, d.p25, d.median, d.p75, d.p90, d.max))]


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:,.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.2f} s"


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc).isoformat(timespec="seconds")
