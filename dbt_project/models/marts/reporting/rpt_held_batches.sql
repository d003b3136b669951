-- Batches held out of publication 暂扣批次: each source entity's batch whose latest verdict is
-- `rejected` (raw._held_batches over the append-only raw._batch_verdicts), with the failed
-- expectations and since when, until corrected, superseded or accepted (`hospital-ops batches accept`).
with held as (
    select * from {{ source_or_empty('load_bookkeeping', '_held_batches') }} as held
)

select
    md5(source || '|' || entity || '|' || batch_date::text) as held_batch_id,
    source,
    {{ source_system_name('source') }} as source_system_name,
    entity,
    raw_table,
    batch_date,
    reasons,
    held_since,
    ({{ dbt.current_timestamp() }}::date - held_since::date) as days_held,
    run_id
from held
