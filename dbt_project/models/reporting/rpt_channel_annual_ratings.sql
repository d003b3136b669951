-- Referral channels' annual ratings 渠道年度评级, with the channel's name and whether the year has ended.
-- Figures are channel_annual_ratings' own.
with ratings as (
    select * from {{ ref('channel_annual_ratings') }}
),

channels as (
    select * from {{ ref('dim_channels') }}
)

select
    ratings.channel_year_id,
    ratings.channel_id,
    channels.channel_name,
    channels.channel_type,
    ratings.rating_year,
    ratings.is_year_closed,
    ratings.quarters_graded,
    ratings.annual_score,
    ratings.annual_grade,
    ratings.referrals,
    ratings.conversion_rate,
    ratings.evidence
from ratings
left join channels on ratings.channel_id = channels.channel_id
