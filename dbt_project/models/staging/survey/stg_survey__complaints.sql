-- Complaints 投诉 with their lifecycle received → handled → tracked → feedback (受理 → 处理 → 跟踪 → 反馈)
-- One row per complaint_id: the latest version, i.e. the furthest step the complaint has reached.
-- The complainant's phone pseudonym stays in raw; the description was scrubbed at extraction.
with current_version as (
    {{ latest_version(source('survey', 'complaints'), ['complaint_id'], tiebreak='updated_at desc') }}
)

select
    complaint_id,
    received_at,
    date_trunc('month', received_at)::date as received_month,
    hospital_id,
    department_id,
    vendor_id,
    channel,
    category,
    nullif(btrim(description), '') as description,
    status,
    status = 'feedback' as is_closed,
    handled_at,
    tracked_at,
    feedback_at,
    feedback_result,
    (extract(epoch from handled_at - received_at) / 3600)::numeric as hours_to_handle,
    (extract(epoch from feedback_at - received_at) / 86400)::numeric as days_to_close,
    updated_at,
    _batch_date as landed_batch_date,
    _source_file as source_file
from current_version
