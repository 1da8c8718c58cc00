"""``graphlets replay``: policies side by side, the curve, the JSON document, and clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from airflow_graphlets.simulate.run import simulate
from airflow_graphlets.store.uri import parse_store_uri


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('replay')}/sim.sqlite"
    simulate(parse_store_uri(uri), pipelines=30, days=120, seed=5)
    return uri


def graphlets(*args, check=True):
    done = subprocess.run([sys.executable, "-m", "airflow_graphlets.cli", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "GLOG_minloglevel": "2"}, check=False)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def test_the_json_document_compares_the_policy_with_every_baseline(store):
    document = json.loads(graphlets("replay", "--store", store, "--json").stdout)
    assert (document["schema"], document["version"]) == ("airflow-graphlets/replay", 1)
    names = [p["policy"] for p in document["policies"]]
    assert names[0].startswith("predictor (skip below ") and names[0].endswith(
        ", as push odds per unit of expected compute)")  # the default: cost-aware, no age weighting
    assert names[1] == "never skip" and names[2].startswith("predictor (skip below ") and "odds" not in names[2]
    assert names[3:] == ["skip when no new data", *(f"skip after {k} not pushed" for k in (1, 2, 3, 4))]
    never = document["policies"][1]
    assert (never["skipped"], never["compute_saved_share"], never["pushes_kept_share"]) == (0, 0.0, 1.0)
    assert document["train_runs"] + document["evaluated_runs"] == document["runs"]
    curve = document["curve"]
    thresholds = [c["threshold"] for c in curve]
    assert thresholds == sorted(thresholds) and document["threshold"] in thresholds
    assert curve[0]["pushes_kept_share"] > 0.98  # from nearly never skipping ...
    lowest_baseline = min(p["pushes_kept_share"] for p in document["policies"])
    assert curve[-1]["pushes_kept_share"] < lowest_baseline or curve[-1]["threshold"] > 100  # ... past every baseline
    learned = document["policies"][0]
    assert learned["compute_saved_share"] > 0 and learned["pushes_kept_share"] < 1
    # Every baseline but never skipping is compared with the curve at its own share of pushes kept.
    assert [c["baseline"] for c in document["comparisons"]] == names[2:]
    point = document["operating_point"]
    assert point["folds"] == 4 and point["target"] == 0.93 and 0.9 <= point["cross_validated_pushes_kept"] <= 1
    assert set(document["features_missing"]) >= {"statistics_drift", "deployed_score", "evaluator_margin"}
    assert {"deployed_score", "statistics_drift"} <= set(document["features_lacking"])  # a simulated store has neither
    held = document["held_out_pipelines"]
    assert len(held["pipelines"]) == 30 // 4 + 1 and held["policies"][0]["decided"] > 0


def test_the_table_and_the_figures(store, tmp_path):
    done = graphlets("replay", "--store", store, "--png", str(tmp_path / "curve.png"),
                     "--html", str(tmp_path / "curve.html"))
    assert "Trade-off over thresholds (learned policy)" in done.stdout
    assert "skip after 3 not pushed" in done.stdout
    assert "chosen by time-ordered cross-validation over 4 slices of the training period" in done.stdout
    assert "this store holds nothing for: " in done.stdout and "Held-out pipelines (8 the predictor never saw)" in done.stdout
    with open(tmp_path / "curve.png", "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    page = (tmp_path / "curve.html").read_text()
    assert page.startswith("<!doctype html>") and "data:image/png;base64," in page


def test_a_policy_file_sets_the_operating_point_and_guardrails(store, tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text("[policy]\ntarget_pushes_kept = 0.999\n[policy.guardrails]\nmax_consecutive_skips = 1\n")
    strict = json.loads(graphlets("replay", "--store", store, "--policy", str(policy), "--json").stdout)
    default = json.loads(graphlets("replay", "--store", store, "--json").stdout)
    assert strict["settings"]["guardrails"]["max_consecutive_skips"] == 1
    assert strict["threshold"] < default["threshold"]
    assert strict["policies"][0]["pushes_kept_share"] >= default["policies"][0]["pushes_kept_share"]


def test_bad_policy_files_are_refused_with_what_to_fix(store, tmp_path):
    policy = tmp_path / "bad.toml"
    policy.write_text("[policy]\ntarget_pushes = 0.9\n")
    done = graphlets("replay", "--store", store, "--policy", str(policy), check=False)
    assert done.returncode != 0
    assert "unknown key(s) target_pushes in [policy]; known: train_share, target_pushes_kept" in done.stderr
    policy.write_text("[policy]\ntrain_share = 2\n")
    done = graphlets("replay", "--store", store, "--policy", str(policy), check=False)
    assert "train_share must be in [0.05, 0.95]" in done.stderr
