-- Held batches 暂扣批次: one row per batch held out of everything published now (the view
-- raw._held_batches, where the latest-verdict rule lives, hospital_ops.batches).
select
    source,
    entity,
    raw_table,
    batch_date,
    reasons,
    held_since,
    run_id
from {{ source('load_bookkeeping', '_held_batches') }}
