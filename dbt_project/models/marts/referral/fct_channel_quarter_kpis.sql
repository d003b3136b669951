-- Channel KPIs per quarter 渠道季度指标: one row per channel per quarter referred — referral volume and
-- its change on the previous quarter, visit conversion, response time (macro referral_measures) and
-- the satisfaction of referred patients (their questionnaires about the visits that followed,
-- int_referral__referred_questionnaires; macro satisfaction_measures). A quarter still in progress is
-- measured on what has come in so far (is_quarter_closed false).
with visits as (
    select * from {{ ref('int_referral__visit_matches') }}
),

referral_rows as (
    select * from {{ ref('stg_referral__referrals') }}
),

channels as (
    select * from {{ ref('stg_referral__channels') }}
),

referred_questionnaires as (
    select * from {{ ref('int_referral__referred_questionnaires') }}
),

survey_answers as (
    select * from {{ ref('int_survey__answers_enriched') }}
),

measured as (
    select
        visits.channel_id,
        visits.referred_quarter as quarter,
        {{ referral_measures('visits', 'referrals') }}
    from visits
    inner join referral_rows as referrals on visits.referral_id = referrals.referral_id
    group by 1, 2
),

questionnaires_of_quarter as (
    -- a questionnaire counts once per channel and quarter even if the person was referred twice
    select distinct
        channel_id,
        referred_quarter as quarter,
        questionnaire_id
    from referred_questionnaires
),

satisfaction as (
    select
        questionnaires_of_quarter.channel_id,
        questionnaires_of_quarter.quarter,
        {{ satisfaction_measures('answers') }}
    from questionnaires_of_quarter
    inner join survey_answers as answers on questionnaires_of_quarter.questionnaire_id = answers.questionnaire_id
    group by 1, 2
)

select
    measured.channel_id || '|' || to_char(measured.quarter, 'YYYY-"Q"Q') as channel_quarter_id,
    measured.channel_id,
    channels.channel_name,
    channels.channel_type,
    channels.tier,
    measured.quarter,
    to_char(measured.quarter, 'YYYY-"Q"Q') as quarter_label,
    (measured.quarter + interval '3 months')::date <= {{ business_date() }} as is_quarter_closed,
    measured.referrals,
    {{ safe_ratio('measured.referrals - lag(measured.referrals) over same_channel',
                  'lag(measured.referrals) over same_channel') }} as referrals_qoq_growth,
    measured.referrals_evaluable,
    measured.referrals_converted,
    measured.conversion_rate,
    -- the open quarter's conversion is provisional 暂定 until every referral's window has closed:
    -- coverage = referrals whose outcome is known / referrals
    {{ safe_ratio('measured.referrals_evaluable', 'measured.referrals') }} as conversion_coverage,
    measured.referrals_evaluable < measured.referrals as is_conversion_provisional,
    measured.referrals_contacted,
    measured.median_response_minutes::numeric as median_response_minutes,
    measured.mean_response_minutes,
    coalesce(satisfaction.questionnaires, 0) as referred_questionnaires,
    coalesce(satisfaction.answers, 0) as referred_answers,
    coalesce(satisfaction.satisfied_answers, 0) as referred_satisfied_answers,
    satisfaction.satisfaction_rate as referred_satisfaction_rate,
    satisfaction.mean_score as referred_mean_score,
    coalesce(satisfaction.questionnaires, 0) >= {{ var('survey_min_sample_for_channel_rate') }}
        as referred_satisfaction_meets_min_sample
from measured
left join channels on measured.channel_id = channels.channel_id
left join satisfaction on measured.channel_id = satisfaction.channel_id and measured.quarter = satisfaction.quarter
window same_channel as (partition by measured.channel_id order by measured.quarter)
