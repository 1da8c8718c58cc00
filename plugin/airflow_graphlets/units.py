"""Durations in the unit that fits their size, for figures and chart axes.

A demo store's runs take seconds and a production one's hours: "0.0 h" in every cell says
nothing. A figure gets the largest unit in which it reads as at least about one (s, min, h,
days); an axis gets one unit for all its ticks, chosen by its largest value, with enough decimals
that neighbouring ticks differ.
"""

from __future__ import annotations

from collections.abc import Callable

_UNITS = ((86400.0, "days", 2 * 86400.0), (3600.0, "h", 90 * 60.0), (60.0, "min", 90.0), (1.0, "s", 0.0))


def duration(seconds: float | None) -> str:
    """``seconds`` as "42 s", "7.5 min", "3.2 h" or "12.4 days" ("–" when unknown)."""
    if seconds is None:
        return "–"
    size, label = _unit(abs(seconds))
    value = seconds / size
    if label == "s" and abs(value) < 10:
        return f"{value:,.1f} s"
    return f"{value:,.0f} {label}" if abs(value) >= 100 else f"{value:,.1f} {label}"


def axis_unit(peak_seconds: float) -> Callable[[float], str]:
    """A label function for an axis whose largest value is ``peak_seconds``: one unit for all
    ticks, with as many decimals as the quarter steps need to differ."""
    size, label = _unit(abs(peak_seconds))
    step = peak_seconds / size / 4 if peak_seconds else 1.0
    decimals = 0 if step >= 10 else 1 if step >= 0.1 else 2

    def label_of(seconds: float) -> str:
        return f"{seconds / size:,.{decimals}f} {label}"

    return label_of


def unit_for(peak_seconds: float) -> tuple[float, str]:
    """The unit (its size in seconds, and its name) an axis up to ``peak_seconds`` reads in."""
    return _unit(abs(peak_seconds))


def _unit(seconds: float) -> tuple[float, str]:
    for size, label, at_least in _UNITS:
        if seconds >= at_least:
            return size, label
    return 1.0, "s"
