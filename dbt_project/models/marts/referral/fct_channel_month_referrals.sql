-- Referrals by channel and month 渠道月度转诊: one row per channel per month referred, with volume,
-- visit conversion and response time (macro referral_measures; the visit match is
-- int_referral__visit_matches).
--
-- Incremental by month 按月增量: a night rebuilds only the months it touched — the months of the
-- referrals matched again since the last build (int_referral__visit_matches.matched_on, which includes
-- every referral whose window was still open) and the months a correction moved one out of
-- (previous_referred_at) — and every month of a channel whose register row (name, type, tier) landed
-- since. `dbt build --full-refresh` rebuilds every month and must give the same table.
{{ config(
    materialized='incremental',
    unique_key='month',
    incremental_strategy='delete+insert',
    indexes=[{'columns': ['channel_id', 'month'], 'unique': True}],
) }}
{%- set bookmark = incremental_bookmark('built_on') if is_incremental() else none %}

with visits as (
    select * from {{ ref('int_referral__visit_matches') }}
),

referral_rows as (
    select * from {{ ref('stg_referral__referrals') }}
),

channels as (
    select * from {{ ref('stg_referral__channels') }}
),

{% if is_incremental() %}
months_to_build as (
    select date_trunc('month', touched.referred_at)::date as month
    from visits
    cross join lateral (values (visits.referred_at), (visits.previous_referred_at)) as touched (referred_at)
    where
        visits.matched_on > {{ bookmark }}
        and touched.referred_at is not null
    union
    select date_trunc('month', visits.referred_at)::date
    from visits
    inner join channels on visits.channel_id = channels.channel_id
    where channels.landed_batch_date > {{ bookmark }}
),
{% endif %}

measured as (
    select
        visits.channel_id,
        date_trunc('month', visits.referred_at)::date as month,
        {{ referral_measures('visits', 'referrals') }}
    from visits
    inner join referral_rows as referrals on visits.referral_id = referrals.referral_id
    {% if is_incremental() -%}
    where date_trunc('month', visits.referred_at)::date in (select months_to_build.month from months_to_build)
    {%- endif %}
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
    measured.mean_response_minutes,
    {{ business_date() }} as built_on
from measured
left join channels on measured.channel_id = channels.channel_id
