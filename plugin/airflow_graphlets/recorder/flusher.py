"""The flusher: one long-lived process per spool that writes records into MLMD as they arrive.

Why a separate process: MLMD's client holds Python's GIL for the length of every call, so a
slow or hung database would freeze a task's own code if MLMD were called inside the task's
process; and a connection kept open across tasks makes each record cost a few milliseconds
instead of a fork and a connect.

How it works: a task appends its record to the spool and sends one datagram to the flusher's
socket in the spool directory. If nobody listens there, the task starts a flusher
(``python -m airflow_graphlets.recorder.flusher``, in its own session, so it outlives the
task). The flusher holds the spool's ``.flusher.lock`` while it lives, drains the spool on every
datagram, backs off while the store is down, publishes its health in ``.flusher.state``, and
exits after ``flusher_idle_seconds`` without work, or after failing that long (the records
wait; the next task starts a flusher with the settings of its day). It publishes a digest of the
store address it writes to: a task whose address differs (a rotated password, a moved database)
while the flusher is failing asks it to step down (:func:`hand_over`), and starts one with its own.
The store's URI reaches it through the environment, never the command line, so passwords do not
show in ``ps``.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

from airflow_graphlets.recorder.spool import Spool, acquire_flock
from airflow_graphlets.store.uri import StoreConfig, parse_store_uri

SOCKET_NAME = ".flusher.sock"
LOCK_NAME = ".flusher.lock"
STATE_NAME = ".flusher.state"
BUSY_NAME = ".flusher.busy"
STARTING_NAME = ".flusher.starting"
LOG_NAME = "flusher.log"
_LOG_LIMIT_BYTES = 1 << 20
_IDLE_MARK = 1.0  # the busy file's mtime while no drain runs (the epoch, give or take)
STORE_ENV = "GRAPHLETS_FLUSHER_STORE_URI"
# A drain that wrote nothing for this long is taken for hung (a database that accepts and never
# answers). The busy file's time is the drain's start, then each record's write (a heartbeat), so a
# drain of a long backlog that keeps writing is never taken for hung.
STALL_SECONDS = 60.0
_HEARTBEAT_SECONDS = 1.0
_MAX_BACKOFF_SECONDS = 30.0
_SPAWN_LOCK_WAIT_SECONDS = 5.0
# A flusher being started (the marker's age) is not started again by other tasks for this long:
# many tasks starting at once on a fresh machine would each start one, and all but one exit.
_STARTING_SECONDS = 10.0
# While records stream in (the last drain ended moments ago), a wake-up waits this long before
# draining, so one drain and one transaction take many records instead of one each.
_GATHER_SECONDS = 0.02
_STREAMING_SECONDS = 0.1


@dataclass(frozen=True)
class FlusherState:
    """What the flusher publishes about itself, for the tasks that wait on it.

    The state file changes only when the store's health does; whether a drain is running, and
    since when, is the modification time of a separate ``.flusher.busy`` file (one ``utime`` call
    per drain instead of a file rewrite).
    """

    pid: int = 0
    last_error: str = ""  # why the last drain stopped, "" when it wrote everything
    error_since: float | None = None
    busy_since: float | None = None  # wall-clock time of the running drain's last progress (its start or last record), None when idle
    store_digest: str = ""  # store_digest() of the address this flusher writes to

    @property
    def store_failing(self) -> bool:
        return bool(self.last_error)

    def stalled(self, now: float | None = None) -> bool:
        return self.busy_since is not None and (now or time.time()) - self.busy_since > STALL_SECONDS


def read_state(spool_dir: str) -> FlusherState:
    """The flusher's last published state (an empty one if it never ran)."""
    try:
        with open(os.path.join(spool_dir, STATE_NAME), encoding="utf-8") as handle:
            fields = json.load(handle)
        busy = os.stat(os.path.join(spool_dir, BUSY_NAME)).st_mtime
    except (OSError, ValueError, TypeError):
        return FlusherState()
    fields.pop("busy_since", None)
    return FlusherState(**fields, busy_since=busy if busy > _IDLE_MARK else None)


def store_digest(store_config: StoreConfig) -> str:
    """A short digest of the full store address (password included, never shown): two flushers'
    addresses differ exactly when their digests do."""
    return hashlib.sha256(store_config.uri(hide_password=False).encode()).hexdigest()[:16]


_STEP_DOWN = b"step-down"


def hand_over(spool_dir: str, store_config: StoreConfig, idle_seconds: float = 300.0) -> bool:
    """If the spool's flusher is failing with another store address than ``store_config``, ask it
    to step down and start one with ``store_config``; ``True`` if so. Never raises."""
    state = read_state(spool_dir)
    if not state.store_failing or not state.store_digest or state.store_digest == store_digest(store_config):
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.sendto(_STEP_DOWN, os.path.join(spool_dir, SOCKET_NAME))
    except OSError:
        pass  # it is gone already
    start_flusher(spool_dir, store_config, idle_seconds)  # waits for the old one's lock
    return True


def notify(spool_dir: str, store_config: StoreConfig, idle_seconds: float = 300.0) -> None:
    """Wake the spool's flusher, starting one if none listens. Never raises."""
    path = os.path.join(spool_dir, SOCKET_NAME)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.sendto(b".", path)
        return
    except BlockingIOError:
        return  # its queue is full of wake-ups already
    except OSError as err:
        if err.errno not in (errno.ENOENT, errno.ECONNREFUSED):
            return
    if not _flusher_holds_lock(spool_dir) and _claim_start(spool_dir):
        start_flusher(spool_dir, store_config, idle_seconds)


def _claim_start(spool_dir: str) -> bool:
    """Whether this task starts the flusher: none was started in the last ``_STARTING_SECONDS``
    (the flusher removes the marker once it listens; a marker left by one that died ages out)."""
    path = os.path.join(spool_dir, STARTING_NAME)
    for _ in range(2):
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            return True
        except FileExistsError:
            try:
                if time.time() - os.stat(path).st_mtime < _STARTING_SECONDS:
                    return False
                os.unlink(path)  # stale: its flusher never came up; claim it again
            except FileNotFoundError:
                pass
        except OSError:
            return True  # no marker possible (a read-only spool): start one as before
    return False


def _flusher_holds_lock(spool_dir: str) -> bool:
    """Whether a flusher owns the spool (it may be starting, before its socket is bound)."""
    try:
        fd = os.open(os.path.join(spool_dir, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the lock if we took it
    return False


def start_flusher(spool_dir: str, store_config: StoreConfig, idle_seconds: float = 300.0) -> None:
    """Start a flusher for ``spool_dir`` in the background (it exits at once if one runs)."""
    env = {**os.environ, STORE_ENV: store_config.uri(hide_password=False), "GLOG_minloglevel": "2"}
    log = _open_log(spool_dir)
    try:
        subprocess.Popen(
            [sys.executable, "-m", "airflow_graphlets.recorder.flusher", "--spool-dir", spool_dir,
             "--idle-seconds", str(idle_seconds)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            close_fds=True,
            start_new_session=True,
        )
    except OSError:
        pass  # the record stays in the spool; the next task, or `graphlets spool replay`, writes it
    finally:
        if log is not subprocess.DEVNULL:
            log.close()


def _open_log(spool_dir: str):
    """The flusher's log, ``flusher.log`` in the spool (restarted past 1 MB); nowhere if it cannot be written."""
    path = os.path.join(spool_dir, LOG_NAME)
    try:
        mode = "wb" if os.path.exists(path) and os.path.getsize(path) > _LOG_LIMIT_BYTES else "ab"
        return open(path, mode)
    except OSError:
        return subprocess.DEVNULL


def stop_stalled_flusher(spool_dir: str) -> bool:
    """Kill a flusher whose drain wrote nothing for :data:`STALL_SECONDS`; ``True`` if one was.

    Only a process that is this spool's flusher and holds its lock: after a crash the pid in the
    state file may belong to another process by now."""
    state = read_state(spool_dir)
    if not state.pid or not state.stalled() or not _is_flusher_of(state.pid, spool_dir):
        return False
    if not _flusher_holds_lock(spool_dir):
        return False
    try:
        os.kill(state.pid, 9)
    except OSError:
        return False
    return True


def _is_flusher_of(pid: int, spool_dir: str) -> bool:
    """Whether ``pid`` is a flusher process of ``spool_dir`` (its command line says so)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            args = handle.read().split(b"\0")
    except OSError:
        return False
    return b"airflow_graphlets.recorder.flusher" in args and os.fsencode(spool_dir) in args


class _Heartbeat:
    """Stamps the busy file as records are written, at most once a second."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._last = 0.0

    def __call__(self) -> None:
        now = time.monotonic()
        if now - self._last >= _HEARTBEAT_SECONDS:
            self._last = now
            _mark_busy(self.path, True)


def run(spool_dir: str, store_config: StoreConfig, idle_seconds: float) -> int:
    """The flusher's main loop; returns when idle for ``idle_seconds`` (or if another runs)."""
    spool = Spool(spool_dir)
    os.makedirs(spool_dir, exist_ok=True)
    lock_fd = os.open(os.path.join(spool_dir, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
    if not acquire_flock(lock_fd, _SPAWN_LOCK_WAIT_SECONDS):
        return 0  # another flusher owns this spool
    sock_path = os.path.join(spool_dir, SOCKET_NAME)
    sock = _bind(sock_path)  # listen before the slow import below, so tasks start no second flusher
    _unlink(os.path.join(spool_dir, STARTING_NAME))

    from airflow_graphlets.recorder.replay import SpoolDrainer  # MLMD is imported here, never in a task

    busy_path = os.path.join(spool_dir, BUSY_NAME)
    heartbeat = _Heartbeat(busy_path)
    drainer = SpoolDrainer(spool, store_config, on_progress=heartbeat)
    digest = store_digest(store_config)
    state = FlusherState(pid=os.getpid(), store_digest=digest)
    _publish(spool_dir, state)
    _mark_busy(busy_path, False)
    backoff = 0.0
    idle_since = failing_since = time.monotonic()
    handing_over = False
    try:
        while os.path.isdir(spool_dir):
            _mark_busy(busy_path, True)
            report = _drain_or_fail(drainer)
            _mark_busy(busy_path, False)
            drained_at = time.monotonic()
            if report.error:
                if not state.store_failing:
                    state = FlusherState(pid=os.getpid(), last_error=report.error, error_since=time.time(),
                                         store_digest=digest)
                    _publish(spool_dir, state)
                    failing_since = time.monotonic()
                if time.monotonic() - failing_since >= idle_seconds:
                    handing_over = True  # failing this long: end; the next task starts one afresh
                    break
                backoff = min(_MAX_BACKOFF_SECONDS, max(1.0, backoff * 2))
                # Retry after the backoff, however many wake-ups come; a step-down ends it now.
                if _wait(sock, min(backoff, idle_seconds)) == _STEP_DOWN or _drain_wakeups(sock):
                    handing_over = True
                    break
                continue
            if state.store_failing:
                state = FlusherState(pid=os.getpid(), store_digest=digest)
                _publish(spool_dir, state)
            backoff = 0.0
            if report.written:
                idle_since = time.monotonic()
            remaining = idle_seconds - (time.monotonic() - idle_since)
            if remaining <= 0:
                break
            if _wait(sock, min(remaining, drainer.seconds_until_link())):
                if report.written and time.monotonic() - drained_at < _STREAMING_SECONDS:
                    time.sleep(_GATHER_SECONDS)
                _drain_wakeups(sock)
                idle_since = time.monotonic()
    finally:
        # Stop listening first, then drain once more: a record spooled after this point finds no
        # socket and starts a new flusher, which waits for this one's lock.
        sock.close()
        _unlink(sock_path)
        if os.path.isdir(spool_dir) and not handing_over:
            drainer.drain(timeout=10)
            if drainer.seconds_until_link() < float("inf"):
                drainer.link_late_inputs()  # what this flusher wrote last may complete others' inputs
        drainer.close()
        os.close(lock_fd)
    # A record spooled while this flusher was leaving found the lock held and started no other.
    # (Not when it failed or stepped down: the next task, or the one that asked, starts one.)
    if os.path.isdir(spool_dir) and spool.pending() and not handing_over:
        start_flusher(spool_dir, store_config, idle_seconds)
    return 0


def _drain_or_fail(drainer):
    """One drain; an error nobody expected counts as the store failing (the flusher backs off and
    tries again) instead of ending the flusher with records waiting."""
    from airflow_graphlets.errors import first_line
    from airflow_graphlets.recorder.replay import ReplayReport

    try:
        return drainer.drain()
    except Exception as err:  # noqa: BLE001 - logged, then treated as a failing store
        logging.getLogger(__name__).exception("airflow-graphlets: the drain failed unexpectedly")
        drainer.close()  # reconnect next time
        return ReplayReport(error=f"{type(err).__name__}: {first_line(err)}")


def _bind(path: str) -> socket.socket:
    _unlink(path)  # a stale socket of a flusher that was killed
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    return sock


def _wait(sock: socket.socket, seconds: float) -> bytes | None:
    """Block until a datagram arrives or ``seconds`` pass; the datagram (truthy), or ``None``."""
    sock.settimeout(max(0.001, seconds))
    try:
        return sock.recv(64) or b"."
    except socket.timeout:
        return None


def _drain_wakeups(sock: socket.socket) -> bool:
    """Read every waiting datagram; ``True`` if one asked this flusher to step down."""
    sock.setblocking(False)
    stepped_down = False
    try:
        while True:
            stepped_down |= sock.recv(64) == _STEP_DOWN
    except OSError:
        pass
    return stepped_down


def _mark_busy(path: str, busy: bool) -> None:
    """Stamp the busy file: now while a drain runs, the epoch when idle."""
    stamp = time.time() if busy else 0.0
    try:
        if not os.path.exists(path):
            with open(path, "w"):
                pass
        os.utime(path, (stamp, stamp))
    except OSError:
        pass  # stall detection is a safety net; recording goes on without it


def _publish(spool_dir: str, state: FlusherState) -> None:
    path = os.path.join(spool_dir, STATE_NAME)
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(asdict(state), handle)
        os.replace(temporary, path)
    except OSError:
        pass


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Drain an airflow-graphlets spool into MLMD.")
    parser.add_argument("--spool-dir", required=True)
    parser.add_argument("--idle-seconds", type=float, default=300.0)
    args = parser.parse_args(argv)
    uri = os.environ.get(STORE_ENV)
    if not uri:
        parser.error(f"set {STORE_ENV} to the store URI")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(args.spool_dir, parse_store_uri(uri), args.idle_seconds)


if __name__ == "__main__":
    sys.exit(main())
