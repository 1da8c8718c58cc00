"""The [graphlets] settings: defaults, and one clear message per bad value."""

from __future__ import annotations

import pytest

from airflow_graphlets.config import OPTIONS, settings_from_mapping
from airflow_graphlets.errors import StoreConfigError


def test_defaults_put_the_store_and_spool_under_airflow_home():
    settings = settings_from_mapping({}, airflow_home="/opt/airflow")
    assert settings.enabled is True
    assert settings.conn_id == "mlmd_default"
    assert settings.default_store == "/opt/airflow/graphlets/mlmd.sqlite"
    assert settings.spool_dir == "/opt/airflow/graphlets/spool"
    assert settings.record_wait is False
    assert settings.record_timeout == 5.0
    assert settings.flusher_idle_seconds == 300


def test_values_override_defaults():
    settings = settings_from_mapping(
        {"enabled": "false", "spool_dir": "/var/spool/graphlets", "record_timeout": "0.5"}, airflow_home="/x"
    )
    assert (settings.enabled, settings.spool_dir, settings.record_timeout) == (False, "/var/spool/graphlets", 0.5)


@pytest.mark.parametrize(
    "name, value, expected",
    [("enabled", "maybe", "True or False"), ("record_timeout", "soon", "a number"), ("record_timeout", "-1", "(0, 600]")],
)
def test_a_bad_value_names_the_option_its_variable_and_a_valid_value(name, value, expected):
    with pytest.raises(StoreConfigError) as raised:
        settings_from_mapping({name: value}, airflow_home="/x")
    message = str(raised.value)
    assert f"[graphlets] {name} = {value!r}" in message
    assert f"AIRFLOW__GRAPHLETS__{name.upper()}" in message
    assert expected in message


def test_every_option_is_documented_in_the_readme():
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for option in OPTIONS:
        assert f"`{option.name}`" in readme, f"README lacks [graphlets] {option.name}"
