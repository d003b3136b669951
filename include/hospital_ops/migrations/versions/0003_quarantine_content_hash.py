"""A row quarantined once is not quarantined again by a later night that reads it again (an
extractor's look-back): raw._quarantine.content_hash keys a quarantined row by its content, and
raw._load_files.rows_already_quarantined counts the rows a night found quarantined already, so the
file still reconciles (read = loaded + quarantined + already quarantined).

Revision ID: 0003_quarantine_content_hash
Revises: 0002_one_watermark_table
"""

from alembic import op

revision = "0003_quarantine_content_hash"
down_revision = "0002_one_watermark_table"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
alter table raw._quarantine add column content_hash text;
comment on column raw._quarantine.content_hash is
    'The quarantined record''s content hash 内容哈希: a later night that reads the same row again does not quarantine it twice';
alter table raw._load_files add column rows_already_quarantined integer not null default 0;
comment on column raw._load_files.rows_already_quarantined is
    'Rows of this file quarantined already by an earlier night 已隔离行数 (read = loaded + quarantined + already quarantined)';
create index _quarantine_content on raw._quarantine (source, entity, content_hash);
""")


def downgrade() -> None:
    op.execute("""
drop index raw._quarantine_content;
alter table raw._load_files drop column rows_already_quarantined;
alter table raw._quarantine drop column content_hash;
""")
