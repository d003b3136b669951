-- Referrals by channel and month 渠道月度转诊: one row per channel per month referred, with volume,
-- visit conversion and response time (macro referral_measures; the visit match is
-- stg_referral__referral_visits).
with visits as (
    select * from {{ ref('stg_referral__referral_visits') }}
),

referral_rows as (
    select * from {{ ref('stg_referral__referrals') }}
),

channels as (
    select * from {{ ref('stg_referral__channels') }}
),

measured as (
    select
        visits.channel_id,
        date_trunc('month', visits.referred_at)::date as month,
        {{ referral_measures('visits', 'referrals') }}
    from visits
    inner join referral_rows as referrals on visits.referral_id = referrals.referral_id
    group by 1, 2
)

select
    measured.channel_id || '|' || to_char(measured.month, 'YYYY-MM') as channel_month_id,
    measured.channel_id,
    channels.channel_name,
    channels.channel_type,
    channels.tier,
    measured.month,
    measured.referrals,
    measured.referrals_evaluable,
    measured.referrals_converted,
    measured.conversion_rate,
    measured.referrals_contacted,
    measured.median_response_minutes::numeric as median_response_minutes,
    measured.mean_response_minutes
from measured
left join channels on measured.channel_id = channels.channel_id
