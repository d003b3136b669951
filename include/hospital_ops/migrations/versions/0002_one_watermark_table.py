"""One watermark table for every source kind: raw._watermarks replaces raw._extract_log (the drop
folders a file source's nights took) and raw._sql_watermarks (the largest updated_at a SQL or API
source's night extracted, and a FHIR export's transactionTime). Their rows move over unchanged.

    source, entity, batch_date   the night; `entity` is the source's entity, `bulk_export` for a FHIR
                                 export, `drop_folders` for a file source's delivery folders
    watermark                    how far that night took the source: the largest `updated_at`
                                 (source local time), the export's transactionTime, or the last
                                 drop folder's date (null when no folder was there)
    taken_from                   a file source only: the first drop folder that night took
    files                        a file source only: how many files it took
    run_id, recorded_at          which run recorded it, and when

Revision ID: 0002_one_watermark_table
Revises: 0001_baseline
"""

from alembic import op

revision = "0002_one_watermark_table"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None

DROP_FOLDERS = "drop_folders"

UPGRADE = f"""
create table raw._watermarks (
    source text not null,
    entity text not null,
    batch_date date not null,
    watermark timestamp,
    taken_from date,
    files integer,
    run_id text,
    recorded_at timestamptz not null default now(),
    primary key (source, entity, batch_date),
    check (entity <> '{DROP_FOLDERS}' or files is not null),
    check (entity = '{DROP_FOLDERS}' or watermark is not null));
comment on table raw._watermarks is
    'Extract watermarks 抽取水位: per source, entity and night, how far the night took the source '
    '(largest updated_at, FHIR export time, or last drop folder)';

insert into raw._watermarks (source, entity, batch_date, watermark, run_id, recorded_at)
select source, entity, batch_date, max_updated_at, run_id, recorded_at from raw._sql_watermarks;

insert into raw._watermarks (source, entity, batch_date, watermark, taken_from, files, run_id, recorded_at)
select source, '{DROP_FOLDERS}', batch_date, folder_to, folder_from, files, run_id, extracted_at
from raw._extract_log;

drop table raw._sql_watermarks;
drop table raw._extract_log;
"""

DOWNGRADE = f"""
create table raw._extract_log (
    source text not null, batch_date date not null, run_id text not null,
    folder_from date, folder_to date, files integer not null,
    extracted_at timestamptz not null default now(),
    primary key (source, batch_date));
create table raw._sql_watermarks (
    source text not null, entity text not null, batch_date date not null,
    max_updated_at timestamp not null, run_id text,
    recorded_at timestamptz not null default now(),
    primary key (source, entity, batch_date));
insert into raw._extract_log (source, batch_date, run_id, folder_from, folder_to, files, extracted_at)
select source, batch_date, run_id, taken_from, watermark::date, files, recorded_at
from raw._watermarks where entity = '{DROP_FOLDERS}';
insert into raw._sql_watermarks (source, entity, batch_date, max_updated_at, run_id, recorded_at)
select source, entity, batch_date, watermark, run_id, recorded_at
from raw._watermarks where entity <> '{DROP_FOLDERS}';
drop table raw._watermarks;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
