-- Quarantine by source and reason 隔离行按来源与原因: rows the loader set aside, per batch date, source
-- system, entity and reason as recorded, with the files they came from. Figures are raw._quarantine's
-- own rows counted; no record content is read.
with quarantine as (
    select * from {{ ref('stg_platform__quarantine') }}
)

select
    md5(batch_date::text || '|' || source || '|' || entity || '|' || reason) as quarantine_reason_id,
    batch_date,
    source,
    {{ source_system_name('source') }} as source_system_name,
    entity,
    reason,
    count(*) as rows_quarantined,
    count(distinct source_file) as files,
    min(quarantined_at) as first_quarantined_at,
    max(quarantined_at) as last_quarantined_at
from quarantine
group by batch_date, source, entity, reason
