-- Quarantined rows 隔离行: one row per row the loader set aside, with its file, line and reason. The
-- record itself (pseudonymised) stays in raw._quarantine and is not selected.
select
    run_id,
    source,
    entity,
    batch_date,
    source_file,
    row_number,
    reason,
    quarantined_at
from {{ source('load_bookkeeping', '_quarantine') }}
