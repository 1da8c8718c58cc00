"""Hostile and absurd input through the CLI: markup and SQL fragments are kept as text, very
long and non-UTF-8 values get a clear message, and the store is never harmed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from airflow_graphlets.store.connect import open_store
from airflow_graphlets.store.uri import parse_store_uri

HOSTILE_DAG = "<img src=x onerror=alert(1)>' OR 1=1; --"
HOSTILE_BY = "robert'); DROP TABLE Execution;--"


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "airflow_graphlets.cli", *args], capture_output=True,
                          timeout=120, env={**os.environ, "GLOG_minloglevel": "2"})


def test_markup_and_sql_in_an_override_are_stored_and_shown_as_text(sqlite_store_uri):
    open_store(parse_store_uri(sqlite_store_uri))
    made = cli("override", "never-skip", "--dag", HOSTILE_DAG, "--by", HOSTILE_BY, "--reason", "x" * 5000,
               "--store", sqlite_store_uri)
    assert made.returncode == 0, made.stderr
    listed = json.loads(cli("override", "list", "--dag", HOSTILE_DAG, "--store", sqlite_store_uri, "--json").stdout)
    assert [(o["dag_id"], o["by"], len(o["reason"])) for o in listed] == [(HOSTILE_DAG, HOSTILE_BY, 1000)]
    store = open_store(parse_store_uri(sqlite_store_uri))
    assert len(store.get_executions()) == 1  # the Execution table is there, holding the override


def test_a_very_long_dag_id_is_just_one_that_has_no_decisions(sqlite_store_uri):
    open_store(parse_store_uri(sqlite_store_uri))
    done = cli("decisions", "--dag", "d" * 20_000, "--store", sqlite_store_uri)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().startswith("0 gate decisions of ")


def test_a_non_utf8_argument_gets_a_clear_message_not_a_traceback(sqlite_store_uri):
    open_store(parse_store_uri(sqlite_store_uri))
    done = subprocess.run([sys.executable, "-m", "airflow_graphlets.cli", "override", "force-run", "--dag",
                           b"bad\xff\xfedag", "--by", "me", "--store", sqlite_store_uri], capture_output=True,
                          timeout=120, env={**os.environ, "GLOG_minloglevel": "2"})
    assert done.returncode == 2, done.stderr
    assert b"Traceback" not in done.stderr
    assert b"not valid UTF-8" in done.stderr
    assert open_store(parse_store_uri(sqlite_store_uri)).get_executions() == []


def test_a_malformed_store_uri_names_the_problem(tmp_path):
    for uri, says in (("postgresql://", b"host"), ("mongodb://x/y", b"not supported"),
                      (f"sqlite:///{tmp_path}/missing/dir/x.sqlite", b"does not exist")):
        done = cli("decisions", "--dag", "d", "--store", uri)
        assert done.returncode == 2, (uri, done.stderr)
        assert says in done.stderr and b"Traceback" not in done.stderr, (uri, done.stderr)
