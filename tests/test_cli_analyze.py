"""``graphlets analyze``: reports in every format, clear errors, and never a write to the store."""

from __future__ import annotations

import hashlib
import json
import re
import os
import shutil
import sqlite3
import subprocess
import sys

import pytest
import sqlalchemy as sa
from airflow_graphlets.cli import main
from airflow_graphlets.store.connect import open_store
from airflow_graphlets.store.inspect import read_only_engine
from airflow_graphlets.store.uri import parse_store_uri
from support.databases import create_store_uri, drop_store
from support.tfx_store import RunPlan, TfxPipeline

HOSTILE = "<script>alert('x')</script>"


@pytest.fixture
def tfx_uri(sqlite_store_uri):
    store = open_store(parse_store_uri(sqlite_store_uri))
    for name in ("fraud", HOSTILE):
        pipeline = TfxPipeline(store, name)
        for i in range(3):
            pipeline.run(f"{name}-{i}", RunPlan(i, window=2, blessed=i != 1))
    return sqlite_store_uri


def _file_of(uri: str) -> str:
    return uri.split("///", 1)[1]


def _digest(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def test_the_terminal_report_is_the_default(tfx_uri, capsys):
    assert main(["analyze", "--store", tfx_uri]) == 0
    out = capsys.readouterr().out
    assert "Model graphlets in" in out and "Compute by operator kind" in out and "fraud" in out


def test_json_html_and_png_reports(tfx_uri, tmp_path, capsys):
    html_path, png_path = tmp_path / "out" / "report.html", tmp_path / "out" / "report.png"
    assert main(["analyze", "--store", tfx_uri, "--json", "--html", str(html_path), "--png", str(png_path)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["totals"]["graphlets"] == 6 and document["totals"]["pushed"] == 4
    page = html_path.read_text()
    assert page.count("<img ") == 8 and "data:image/png;base64," in page
    assert "class='grid'" in page and "class='cards'" in page  # figures side by side, headline first
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", page)
    titles = re.findall(r"<img alt='(.*?)'", page)
    assert len(captions) == 8 and not set(captions) & set(titles)  # a caption says more than its title
    assert HOSTILE not in page and "&lt;script&gt;" in page  # names from the store are escaped
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png_path.stat().st_size > 20_000


def test_the_installed_command_runs(tfx_uri):
    graphlets = os.path.join(os.path.dirname(sys.executable), "graphlets")
    result = subprocess.run([graphlets, "analyze", "--store", tfx_uri, "--pipeline", "fraud", "--json"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert [p["pipeline"] for p in json.loads(result.stdout)["pipelines"]] == ["fraud"]


def test_the_reference_reader_gives_the_same_report(tfx_uri, capsys):
    main(["analyze", "--store", tfx_uri, "--json"])
    bulk = json.loads(capsys.readouterr().out)
    main(["analyze", "--store", tfx_uri, "--json", "--reader", "mlmd-api"])
    api = json.loads(capsys.readouterr().out)
    assert (bulk["reader"], api["reader"]) == ("bulk", "mlmd-api")
    assert {k: v for k, v in bulk.items() if k != "reader"} == {k: v for k, v in api.items() if k != "reader"}


def test_analysing_never_writes_to_the_store(tfx_uri):
    path = _file_of(tfx_uri)
    sqlite3.connect(path).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
    before = _digest(path)
    assert main(["analyze", "--store", tfx_uri, "--json"]) == 0
    assert main(["analyze", "--store", tfx_uri, "--json", "--reader", "mlmd-api"]) == 0
    assert _digest(path) == before


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mysql"])
def test_the_read_only_connection_refuses_writes(backend, tmp_path):
    uri = create_store_uri(backend, str(tmp_path))
    try:
        open_store(parse_store_uri(uri))
        engine = read_only_engine(parse_store_uri(uri))
        with pytest.raises(sa.exc.DBAPIError), engine.begin() as conn:
            conn.execute(sa.text("UPDATE MLMDEnv SET schema_version = 11"))
        engine.dispose()
    finally:
        drop_store(uri)


def _error(capsys, *argv) -> str:
    assert main(["analyze", *argv]) == 2
    return capsys.readouterr().err


def test_a_missing_sqlite_file_is_named_and_not_created(tmp_path, capsys):
    missing = tmp_path / "nope" / "mlmd.sqlite"
    message = _error(capsys, "--store", f"sqlite:///{missing}")
    assert "No SQLite MLMD store at" in message and str(missing) in message
    assert not missing.exists() and not missing.parent.exists()


def test_a_missing_database_is_named(capsys):
    message = _error(capsys, "--store", "postgresql://postgres@127.0.0.1:5432/graphlets_no_such_db")
    assert "does not exist" in message and "graphlets_no_such_db" in message


def test_a_database_that_is_not_mlmd_is_refused(tmp_path, capsys):
    path = tmp_path / "other.sqlite"
    sqlite3.connect(path).execute("CREATE TABLE invoices (id INTEGER)").connection.commit()
    message = _error(capsys, "--store", f"sqlite:///{path}")
    assert "is not an ML Metadata store" in message and "invoices" in message
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    assert "is empty" in _error(capsys, "--store", f"sqlite:///{empty}")


def test_a_store_without_trainers_has_no_graphlets(sqlite_store_uri, capsys):
    open_store(parse_store_uri(sqlite_store_uri))
    message = _error(capsys, "--store", sqlite_store_uri)
    assert "holds no model graphlet" in message and "Trainer" in message


def test_an_unsupported_schema_version_is_named(tfx_uri, tmp_path, capsys):
    copy = tmp_path / "old.sqlite"
    shutil.copy(_file_of(tfx_uri), copy)
    with sqlite3.connect(copy) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("UPDATE MLMDEnv SET schema_version = 7")
    message = _error(capsys, "--store", f"sqlite:///{copy}")
    assert "schema version 7" in message and "version 10" in message


def test_bad_arguments_are_named(tfx_uri, capsys):
    assert "--top must be 0 or more" in _error(capsys, "--store", tfx_uri, "--top", "-1")
    assert "scheme" in _error(capsys, "--store", "oracle://db/x")


def test_axes_of_nearly_equal_values_read_as_plain_numbers():
    """No "1e-5+1.1e1" offset labels: every lifespan equal to the microsecond, say."""
    import matplotlib.pyplot as plt
    import numpy as np

    from airflow_graphlets.graphlets.plots import _cdf, _plain_numbers

    fig, ax = plt.subplots()
    _cdf(ax, np.asarray([11.00001, 11.00002, 11.00003]), "days")
    _plain_numbers(ax)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert ax.xaxis.get_offset_text().get_text() == ""
    assert labels and not any("e" in label for label in labels)
    plt.close(fig)
