"""Small defects with a security or robustness edge (issue 22, item 13): odd characters in an
SQLite path, and the summary's lock file in the shared temporary directory."""

from __future__ import annotations

import os
import tempfile

import pytest

from airflow_graphlets.errors import GraphletsError
from airflow_graphlets.graphlets.bulk_reader import read_graphlets
from airflow_graphlets.simulate.run import simulate
from airflow_graphlets.store.inspect import mlmd_schema_version, read_only_engine
from airflow_graphlets.store.uri import parse_store_uri
from airflow_graphlets.summary.refresh import refresh_lock, summary_lock_path


def test_an_sqlite_store_whose_path_holds_hash_and_percent_signs_is_read(tmp_path):
    directory = tmp_path / "team #1 at 100%"
    directory.mkdir()
    config = parse_store_uri("sqlite:///" + str(directory / "mlmd%20#1.sqlite").replace("%", "%25").replace("#", "%23"))
    assert config.path.endswith("mlmd%20#1.sqlite")
    simulate(config, pipelines=2, days=5, seed=1)
    engine = read_only_engine(config)
    assert mlmd_schema_version(engine, config) == 10
    engine.dispose()
    assert len(read_graphlets(config).graphlets) > 0


@pytest.fixture
def shared_tmp(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_the_summary_lock_lives_in_a_directory_only_this_user_can_write(shared_tmp):
    path = summary_lock_path("sqlite:////srv/summary.sqlite")
    directory = os.path.dirname(path)
    assert directory == str(shared_tmp / f"airflow-graphlets-{os.getuid()}")
    assert os.stat(directory).st_mode & 0o777 == 0o700
    with refresh_lock(path) as held:
        assert held
        with refresh_lock(path) as again:
            assert not again  # one refresh at a time


def test_a_lock_directory_others_can_write_is_refused(shared_tmp):
    planted = shared_tmp / f"airflow-graphlets-{os.getuid()}"
    planted.mkdir(mode=0o777)
    os.chmod(planted, 0o777)
    with pytest.raises(GraphletsError, match="not a directory only this user can write"):
        summary_lock_path("sqlite:////srv/summary.sqlite")


def test_a_link_planted_at_the_lock_path_is_not_followed(shared_tmp):
    path = summary_lock_path("sqlite:////srv/summary.sqlite")
    target = shared_tmp / "victim"
    target.write_text("keep me")
    os.symlink(target, path)
    with pytest.raises(OSError):
        with refresh_lock(path):
            pass
    assert target.read_text() == "keep me"
