-- Batch verdicts 批次裁决: every verdict on a source entity's night batch as appended to the append-only
-- raw._batch_verdicts (the gate's passed or rejected, a dbt test's rejected, a person's accepted, a later
-- delivery's superseded).
select
    source,
    entity,
    batch_date,
    verdict,
    reasons,
    note,
    decided_by,
    run_id,
    decided_at
from {{ source('load_bookkeeping', '_batch_verdicts') }}
