#!/usr/bin/env bash
# First start of the PostgreSQL container: a role and databases for the MLMD store and the
# Graphlets UI's summary, beside Airflow's own database.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE ROLE mlmd LOGIN PASSWORD '${MLMD_PASSWORD}';
CREATE DATABASE mlmd OWNER mlmd;
CREATE DATABASE graphlets_summary OWNER mlmd;
SQL
