-- Channel register 渠道名录: one row per cooperating channel
-- One row per channel_id: the current version (the register is re-sent whole; see macro latest_version).
-- The contact person and phone stay in raw, pseudonymized.
with current_version as (
    {{ latest_version(source('referral', 'channels'), ['channel_id']) }}
)

select
    channel_id,
    channel_name,
    channel_type,
    tier,
    cooperation_start_date,
    partner_hospital_id,
    _batch_date as landed_batch_date,
    _source_file as source_file
from current_version
