"""Baseline: the warehouse's own tables as the release before migrations created them.

Idempotent on purpose (`if not exists`, `create or replace`): on a warehouse that release set up it
changes nothing and only stamps the version; on a new warehouse it creates the same objects. Moved
here unchanged from where they were created then: the loader (quarantine, load files, drop-folder
log), the SQL extractor (watermarks), the batch verdicts, the quality gate (dq.gate_results), dbt's
source freshness (dq.source_freshness), the publication (audit.publications), the notifier
(ops.notifications_sent), dbt's on-run-start (ops.score_adjustments, ops.warning_actions) and
sql/run_ledger.sql (the run ledger, run as the administrator and owned by hospital_ops_ledger).

Revision ID: 0001_baseline
Revises:
"""

from importlib.resources import files

from alembic import op

from hospital_ops.security import WRITER

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None

RAW = """
create schema if not exists raw;

create table if not exists raw._quarantine (
    run_id text not null, source text not null, entity text not null,
    batch_date date not null, source_file text not null, row_number integer not null,
    reason text not null, record jsonb, quarantined_at timestamptz not null default now());

create table if not exists raw._load_files (
    run_id text not null, source text not null, entity text not null,
    batch_date date not null, source_file text not null, file_sha256 text not null,
    rows_read integer not null, rows_loaded integer not null, rows_quarantined integer not null,
    loaded_at timestamptz not null default now(),
    primary key (source, batch_date, source_file));

create table if not exists raw._extract_log (
    source text not null, batch_date date not null, run_id text not null,
    folder_from date, folder_to date, files integer not null,
    extracted_at timestamptz not null default now(),
    primary key (source, batch_date));

create table if not exists raw._sql_watermarks (
    source text not null, entity text not null, batch_date date not null,
    max_updated_at timestamp not null, run_id text,
    recorded_at timestamptz not null default now(),
    primary key (source, entity, batch_date));

create table if not exists raw._batch_verdicts (
    source text not null, entity text not null, batch_date date not null,
    verdict text not null check (verdict in ('passed', 'rejected', 'accepted', 'superseded')),
    reasons text, note text, decided_by text not null, run_id text,
    decided_at timestamptz not null default clock_timestamp());

create or replace function raw._batch_verdicts_append_only() returns trigger language plpgsql as $fn$
begin
    raise exception 'raw._batch_verdicts is append-only: record a new verdict instead';
end
$fn$;

create or replace trigger batch_verdicts_append_only before update or delete or truncate on raw._batch_verdicts
    for each statement execute function raw._batch_verdicts_append_only();

create or replace view raw._held_batches as
select source, entity, source || '__' || entity as raw_table, batch_date, reasons, decided_at as held_since, run_id
from (select distinct on (source, entity, batch_date) *
      from raw._batch_verdicts order by source, entity, batch_date, decided_at desc) latest
where verdict = 'rejected';

create table if not exists raw._held_batches_applied (
    held_set text not null, applied_at timestamptz not null default now());
"""

DQ = """
create schema if not exists dq;

create table if not exists dq.validation_results (
    run_id text not null,
    business_date date not null,
    checkpoint text not null,
    suite text not null,
    target_table text not null,
    expectation_type text not null,
    column_name text,
    kwargs jsonb,
    success boolean not null,
    observed_value jsonb,
    unexpected_count bigint,
    element_count bigint,
    validated_at timestamptz not null default now()
);
create index if not exists validation_results__run on dq.validation_results (run_id, checkpoint);

create table if not exists dq.source_freshness (
    business_date date not null, source text not null, table_name text not null,
    status text not null, max_loaded_at timestamptz, checked_at timestamptz not null default now(),
    age_seconds double precision, warn_after text, error_after text, message text,
    primary key (business_date, source, table_name));
comment on table dq.source_freshness is
    'Source freshness 数据源时效: dbt source freshness per source table and night (pass / warn / error / '
    'runtime error); a table in error leaves its dependants out of that night''s marts build';
"""

AUDIT = """
create table if not exists audit.publications (
    run_id text not null, business_date date not null, relation text not null,
    row_count bigint not null, published_at timestamptz not null default now());
alter table audit.publications add column if not exists forced boolean not null default false;
"""

OPS = """
create schema if not exists ops;

create table if not exists ops.notifications_sent (
    alert_kind text not null,
    alert_id text not null,
    business_date date not null,
    run_id text not null,
    title text not null,
    body text not null,
    sent_at timestamptz not null default now(),
    primary key (alert_kind, alert_id)
);
comment on table ops.notifications_sent is
    'Alerts sent to the notification channels 已发送的预警通知: one row per alert, so none is sent twice';

create table if not exists ops.score_adjustments (
    department_id text not null,
    month date not null,
    adjusted_score numeric not null check (adjusted_score between 0 and 100),
    reason text not null,
    requested_by text not null,
    decided_by text not null,
    decided_at timestamptz not null default now());

create table if not exists ops.warning_actions (
    warning_id text not null,
    action text not null check (action in ('acknowledge', 'resolve')),
    actor text not null,
    note text,
    acted_at timestamptz not null default now());
"""


def upgrade() -> None:
    op.execute(RAW)
    op.execute(DQ)
    # the run ledger: created by the administrator and handed to the ledger role (the writer may only
    # append through audit.append_run); it also takes over a ledger an older release let the writer own
    op.execute("reset role")
    op.execute(files("hospital_ops").joinpath("sql/run_ledger.sql").read_text(encoding="utf-8"))
    op.execute(f'set role "{WRITER}"')
    op.execute(AUDIT)
    op.execute(OPS)


def downgrade() -> None:
    raise NotImplementedError("the baseline is not undone: it holds the warehouse's history and its audit ledger")
