-- Referral channels 合作渠道维度, with their names, type and tier.
select
    channel_id,
    channel_name,
    channel_type,
    tier,
    cooperation_start_date,
    partner_hospital_id
from {{ ref('stg_referral__channels') }}
