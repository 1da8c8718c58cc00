"""Durations read in units that fit their size (issue 23): no more "0.0 h" for a demo's seconds."""

from __future__ import annotations

import pytest

from airflow_graphlets.units import axis_unit, duration


@pytest.mark.parametrize("seconds, shown", [
    (0.4, "0.4 s"), (7, "7.0 s"), (42, "42.0 s"), (89, "89.0 s"), (95, "1.6 min"), (600, "10.0 min"),
    (5399, "90.0 min"), (5400, "1.5 h"), (3 * 3600, "3.0 h"), (47 * 3600, "47.0 h"), (3 * 86400, "3.0 days"),
    (400 * 86400, "400 days"), (None, "–"),
])
def test_a_duration_reads_in_the_unit_that_fits(seconds, shown):
    assert duration(seconds) == shown


@pytest.mark.parametrize("peak, ticks", [
    (40, ["0 s", "10 s", "20 s", "30 s", "40 s"]),
    (4.0, ["0.0 s", "1.0 s", "2.0 s", "3.0 s", "4.0 s"]),
    (1800, ["0.0 min", "7.5 min", "15.0 min", "22.5 min", "30.0 min"]),
    (2 * 3600, ["0.0 h", "0.5 h", "1.0 h", "1.5 h", "2.0 h"]),
    (10 * 3600, ["0.0 h", "2.5 h", "5.0 h", "7.5 h", "10.0 h"]),
    (30 * 86400, ["0.0 days", "7.5 days", "15.0 days", "22.5 days", "30.0 days"]),
    (400 * 86400, ["0 days", "100 days", "200 days", "300 days", "400 days"]),
])
def test_an_axis_uses_one_unit_and_ticks_that_differ(peak, ticks):
    label = axis_unit(peak)
    shown = [label(peak * k / 4) for k in range(5)]
    assert shown == ticks
    assert len(set(shown)) == 5
