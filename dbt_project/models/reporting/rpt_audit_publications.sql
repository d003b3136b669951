-- Publications 发布记录: every relation each run published to the BI schemas, with its row count and
-- whether it was forced over a newer business date. Figures are audit.publications' own rows.
with publications as (
    select * from {{ ref('stg_platform__publications') }}
)

select
    md5(run_id || '|' || relation) as publication_id,
    business_date,
    run_id,
    relation,
    row_count,
    published_at,
    is_forced
from publications
