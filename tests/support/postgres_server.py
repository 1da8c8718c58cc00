"""A PostgreSQL server of the test's own (initdb on a free port), which the test may stop,
restart and keep down: the machine's shared server must stay up for everything else."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field

import psycopg2

from support.airflow_services import free_port


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (looked in /usr/lib/postgresql/*/bin)")
    return found[-1]


@dataclass
class PostgresServer:
    """One private cluster, run as the ``postgres`` user (PostgreSQL refuses to run as root)."""

    port: int = field(default_factory=free_port)
    directory: str = ""
    # Server settings (``-c name=value``). Tests run without fsync: their servers hold nothing
    # that must survive a crash of the machine.
    settings: dict[str, str] = field(default_factory=lambda: {"fsync": "off"})

    def __post_init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="graphlets-pg-")
        shutil.chown(self.directory, "postgres")
        self._as_postgres(_bin("initdb"), "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync")

    @property
    def data(self) -> str:
        return os.path.join(self.directory, "data")

    def uri(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        self._as_postgres(
            _bin("pg_ctl"), "-D", self.data, "-l", os.path.join(self.directory, "server.log"), "-w",
            "-o", " ".join([f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1",
                            *(f"-c {name}={value}" for name, value in self.settings.items())]), "start",
        )

    def stop(self) -> None:
        """A fast shutdown: open connections are cut, new ones are refused until :meth:`start`."""
        self._as_postgres(_bin("pg_ctl"), "-D", self.data, "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def create_database(self, name: str) -> str:
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return self.uri(name)

    def remove(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.directory, ignore_errors=True)

    def log(self) -> str:
        with open(os.path.join(self.directory, "server.log"), errors="replace") as handle:
            return handle.read()

    @staticmethod
    def _as_postgres(*args: str) -> None:
        done = subprocess.run(["runuser", "-u", "postgres", "--", *args], capture_output=True, text=True,
                              cwd="/tmp", timeout=120)
        if done.returncode != 0:
            raise subprocess.CalledProcessError(done.returncode, args, done.stdout, done.stderr)
