#!/usr/bin/env bash
# The warehouse's roles and database (README "Audit and security"; hospital_ops.security).
#
# The official postgres image runs the scripts in /docker-entrypoint-initdb.d/ once, when the data
# volume is empty, against a temporary server that only listens on its Unix socket. Nothing else can
# connect before the roles exist, and no superuser credentials have to leave this container.
#
#   hospital_ops_writer  the pipeline (Airflow's `warehouse` connection); owns the database and all
#                        it builds
#   bi_reader            Metabase: reads marts and scoring (grants are applied by the writer at
#                        every publication)
#   auditor              reads snapshots, audit and dq
#   hospital_ops_ledger  no login: owns the run ledger, its trigger and its append function
#                        (include/hospital_ops/sql/run_ledger.sql, mounted at /opt/hospital-ops/sql)
#
# Every role authenticates with scram-sha-256 (POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD), the
# superuser too: psql here uses the superuser's password from the environment.
#
# Passwords come from the environment (.env). The script is idempotent: to rotate a password or repair
# an old volume, run it again inside the container:
#   docker compose exec warehouse bash /docker-entrypoint-initdb.d/10-hospital-ops-roles.sh
set -euo pipefail

: "${WAREHOUSE_WRITER_PASSWORD:?set WAREHOUSE_WRITER_PASSWORD in .env}"
: "${WAREHOUSE_BI_READER_PASSWORD:?set WAREHOUSE_BI_READER_PASSWORD in .env}"
: "${WAREHOUSE_AUDITOR_PASSWORD:?set WAREHOUSE_AUDITOR_PASSWORD in .env}"
WAREHOUSE_DB="${WAREHOUSE_DB:-hospital_ops}"
LEDGER_SQL="${LEDGER_SQL:-/opt/hospital-ops/sql/run_ledger.sql}"
ROLE_SETTINGS_SQL="${ROLE_SETTINGS_SQL:-/opt/hospital-ops/sql/role_settings.sql}"
# the writer's temp_file_limit, as the embedded warehouse sets it (hospital_ops.limits)
TEMP_FILE_LIMIT="${HOSPITAL_OPS_TEMP_FILE_LIMIT:-10GB}"
export PGPASSWORD="${PGPASSWORD:-${POSTGRES_PASSWORD:-}}"

run_psql() {
    psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --username "${POSTGRES_USER:-postgres}" "$@"
}

# psql variables (-v) are interpolated as literals (:'name') and identifiers (:"name"), so passwords
# are never spliced into SQL text by the shell.
run_psql --dbname postgres \
    -v writer_password="$WAREHOUSE_WRITER_PASSWORD" \
    -v bi_reader_password="$WAREHOUSE_BI_READER_PASSWORD" \
    -v auditor_password="$WAREHOUSE_AUDITOR_PASSWORD" \
    -v db="$WAREHOUSE_DB" <<'SQL'
select format('create role %I login', role_name)
from (values ('hospital_ops_writer'), ('bi_reader'), ('auditor')) as wanted(role_name)
where not exists (select from pg_roles where rolname = role_name)
\gexec

select 'create role hospital_ops_ledger nologin'
where not exists (select from pg_roles where rolname = 'hospital_ops_ledger')
\gexec

alter role hospital_ops_writer with login password :'writer_password';
alter role bi_reader with login password :'bi_reader_password';
alter role auditor with login password :'auditor_password';

select format('create database %I owner hospital_ops_writer encoding %L template template0', :'db', 'UTF8')
where not exists (select from pg_database where datname = :'db')
\gexec

alter database :"db" owner to hospital_ops_writer;
-- only the three roles connect; the writer owns the database, the readers get exactly their schemas
revoke all on database :"db" from public;
grant connect on database :"db" to bi_reader, auditor;
SQL

# the roles' settings, the same file the embedded warehouse runs (hospital_ops.security.harden_roles):
# no superuser or role creation, the writer's errors terse in the server log, its temp_file_limit
run_psql --dbname postgres -v temp_file_limit="$TEMP_FILE_LIMIT" --file "$ROLE_SETTINGS_SQL"

run_psql --dbname "$WAREHOUSE_DB" <<'SQL'
-- as on the embedded warehouse (warehouse._lock_down_public_schema): the writer owns public and
-- nobody else creates objects in it
alter schema public owner to hospital_ops_writer;
revoke create on schema public from public;
SQL

# the run ledger, owned by hospital_ops_ledger: the writer appends through audit.append_run only
run_psql --dbname "$WAREHOUSE_DB" --file "$LEDGER_SQL"

echo "hospital-ops: roles hospital_ops_writer, bi_reader, auditor, the run ledger and database ${WAREHOUSE_DB} ready"
