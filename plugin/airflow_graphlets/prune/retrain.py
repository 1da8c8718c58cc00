"""Keep the gate's predictor learning: train it again on the store's newest outcomes and put it
in place atomically, so a gate deciding meanwhile reads the old file or the new one, never half.

``graphlets train-predictor`` and the maintenance DAG (``dags/graphlets_maintenance.py``) both
call :func:`retrain`; every decision names the predictor version it used
(``graphlets_policy_version`` in the skip log).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

from airflow_graphlets.errors import GraphletsError
from airflow_graphlets.prune.evaluate import Inputs, PolicySettings, train_predictor
from airflow_graphlets.prune.predictor import PushPredictor
from airflow_graphlets.store.uri import StoreConfig


@dataclass(frozen=True)
class Retrained:
    """What :func:`retrain` wrote."""

    path: str
    predictor: PushPredictor
    replaced: str | None  # the version it replaced, None when there was none (or it was unreadable)


def retrain(config: StoreConfig, path: str, settings: PolicySettings | None = None, seed: int = 0,
            make_directory: bool = True) -> Retrained:
    """Train the predictor on every finished run of ``config`` and replace ``path`` with it
    (making its directory when ``make_directory``).

    Raises:
      GraphletsError: too little history to learn from, or ``path`` cannot be written (the
        message says which, and the old predictor stays in place).
    """
    from airflow_graphlets.graphlets.bulk_reader import read_graphlets

    partial = _reserve_beside(path, make_directory)  # an unwritable path fails before minutes of training
    try:
        predictor = train_predictor(read_graphlets(config), Inputs.read(config), settings, seed=seed)
        try:
            previous = PushPredictor.load(path).version
        except GraphletsError:
            previous = None
        try:
            predictor.save(partial)
            os.replace(partial, path)
        except OSError as err:
            raise _unwritable(path, err) from None
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return Retrained(path, predictor, previous)


def _reserve_beside(path: str, make_directory: bool) -> str:
    """An empty temporary file in ``path``'s directory, to be renamed over ``path`` when written."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        if make_directory:
            os.makedirs(directory, exist_ok=True)
        handle, partial = tempfile.mkstemp(prefix=".push-predictor-", suffix=".npz", dir=directory)
    except OSError as err:
        raise _unwritable(path, err) from None
    os.close(handle)
    return partial


def _unwritable(path: str, err: OSError) -> GraphletsError:
    return GraphletsError(f"Cannot write the predictor to {path}: {err.strerror}. Pick a writable path "
                          "([graphlets] predictor_path or --out).")
