"""Set operations on sorted int64 arrays: what the set-based assembly and analyses are made of.

NumPy's ``unique`` and ``isin`` hash their input first, which is several times slower on the tens
of millions of int64 keys a paper-scale store gives than sorting (timsort is linear on the
already-sorted runs these arrays arrive in) and binary search.
"""

from __future__ import annotations

import numpy as np


def distinct(keys: np.ndarray) -> np.ndarray:
    """The sorted distinct values of ``keys``."""
    keys = np.asarray(keys, dtype=np.int64)
    if len(keys) < 2:
        return keys
    keys = np.sort(keys, kind="stable")
    keep = np.empty(len(keys), dtype=bool)
    keep[0] = True
    np.not_equal(keys[1:], keys[:-1], out=keep[1:])
    return keys[keep]


def member(sorted_keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """For each query, whether it is in ``sorted_keys`` (which must be sorted)."""
    if not len(sorted_keys):
        return np.zeros(len(queries), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_keys, queries), len(sorted_keys) - 1)
    return sorted_keys[at] == queries
