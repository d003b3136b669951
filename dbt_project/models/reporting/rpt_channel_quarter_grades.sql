-- Referral channels' quarterly grades 渠道季度评级, closed quarters only, with the channel's name:
-- referrals, conversion, referred patients' satisfaction, response time, score and grade against the
-- previous quarter's. Figures are channel_quarter_grades' own.
with grades as (
    select * from {{ ref('channel_quarter_grades') }}
    where is_quarter_closed
),

channels as (
    select * from {{ ref('dim_channels') }}
)

select
    grades.channel_quarter_id,
    grades.channel_id,
    channels.channel_name,
    grades.channel_type,
    grades.tier,
    grades.quarter,
    grades.quarter_label,
    grades.referrals,
    grades.conversion_rate,
    grades.referred_satisfaction_rate,
    grades.median_response_minutes,
    grades.total_score,
    grades.grade,
    grades.previous_grade,
    grades.is_downgrade,
    grades.evidence
from grades
left join channels on grades.channel_id = channels.channel_id
