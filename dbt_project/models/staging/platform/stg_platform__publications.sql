-- Publications 发布记录: one row per relation each run published to the BI schemas, with its row count and
-- whether it was forced over a newer business date (audit.publications).
select
    run_id,
    business_date,
    relation,
    row_count,
    published_at,
    forced as is_forced
from {{ source('audit', 'publications') }}
