"""Secrets backends that fail, for the fault tests (`[secrets] backend = secrets_backends.X`)."""

from __future__ import annotations

from airflow.sdk.bases.secrets_backend import BaseSecretsBackend


class SealedVault(BaseSecretsBackend):
    """A secrets backend whose every look-up fails, as a sealed or unreachable vault does."""

    def get_conn_value(self, conn_id: str, team_name: str | None = None) -> str | None:
        raise ConnectionError("the vault is sealed")

    def get_connection(self, conn_id: str, team_name: str | None = None):
        raise ConnectionError("the vault is sealed")

    def get_variable(self, key: str, team_name: str | None = None) -> str | None:
        raise ConnectionError("the vault is sealed")


class HangingVault(BaseSecretsBackend):
    """A secrets backend that never answers."""

    def get_conn_value(self, conn_id: str, team_name: str | None = None) -> str | None:
        import time

        time.sleep(3600)

    def get_connection(self, conn_id: str, team_name: str | None = None):
        import time

        time.sleep(3600)
