#!/usr/bin/env bash
# Creates MLflow's role and database beside the service's. The Postgres image runs (sources) the scripts in
# /docker-entrypoint-initdb.d once, when the data volume is new, with POSTGRES_USER and POSTGRES_DB set;
# MLFLOW_DB_PASSWORD comes from the same Secret as the server's backend-store URI.
# Used by the Kubernetes StatefulSet (a ConfigMap) and by deploy/compose/compose.yaml (a bind mount).
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set role="${MLFLOW_DB_USER:-mlflow}" --set db="${MLFLOW_DB_NAME:-mlflow}" \
  --set password="${MLFLOW_DB_PASSWORD:?MLFLOW_DB_PASSWORD is not set}" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"db" OWNER :"role";
SQL
