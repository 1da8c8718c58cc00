"""Faults injected into real processes, as the kernel would cause them."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

from airflow_graphlets.graphlets.bulk_reader import _fetch as _read_piece


@dataclass(frozen=True)
class KillFirstReaderProcess:
    """Stands in for the bulk reader's ``_fetch``: the first reader *process* to call it is
    SIGKILLed (as the out-of-memory killer would); every other call reads as usual.

    A module-level class so the pool can pickle it; ``marker`` (a file created once) makes
    "first" hold across processes."""

    parent_pid: int
    marker: str

    def __call__(self, *args):
        if os.getpid() != self.parent_pid:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return _read_piece(*args)


@dataclass(frozen=True)
class RecordInheritedStoreFiles:
    """Stands in for the bulk reader's ``_fetch``: before reading, a reader process appends to
    ``log`` the files of ``store_path`` it holds open (all inherited: it has opened none yet)."""

    store_path: str
    log: str

    def __call__(self, *args):
        held = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            if target.startswith(self.store_path):
                held.append(target)
        with open(self.log, "a") as handle:
            handle.write(f"{os.getpid()} {sorted(held)}\n")
        return _read_piece(*args)
