-- Batch verdicts 批次裁决: every verdict on a source entity's night batch, as appended to
-- raw._batch_verdicts (the gate's passed or rejected, a person's accepted, a later delivery's
-- superseded), with whether the batch is held out of publication now (raw._held_batches, where the
-- latest-verdict rule lives) and for how many days.
with verdicts as (
    select * from {{ ref('stg_platform__batch_verdicts') }}
),

held as (
    select * from {{ ref('stg_platform__held_batches') }}
)

select
    md5(
        verdicts.source || '|' || verdicts.entity || '|' || verdicts.batch_date::text || '|' || verdicts.verdict
        || '|' || verdicts.decided_at::text
    ) as batch_verdict_id,
    verdicts.source,
    {{ source_system_name('verdicts.source') }} as source_system_name,
    verdicts.entity,
    verdicts.batch_date,
    verdicts.verdict,
    case verdicts.verdict
        when 'passed' then '通过 Passed'
        when 'rejected' then '驳回 Rejected'
        when 'accepted' then '人工接受 Accepted'
        when 'superseded' then '已被替代 Superseded'
        else verdicts.verdict
    end as verdict_name,
    verdicts.reasons,
    verdicts.note,
    verdicts.decided_by,
    verdicts.decided_at,
    verdicts.run_id,
    held.batch_date is not null as is_held,
    ({{ dbt.current_timestamp() }}::date - held.held_since::date) as days_held
from verdicts
left join held
    on verdicts.source = held.source and verdicts.entity = held.entity and verdicts.batch_date = held.batch_date
