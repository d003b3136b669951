-- Annual channel rating 渠道年度评级: one row per channel per year — the mean of the year's quarterly
-- total scores (channel_quarter_grades), graded with the same bands (seed channel_grade_bands), with
-- the year's referral volume and conversion. A year in progress is rated on its quarters so far
-- (is_year_closed false).
with quarters as (
    select * from {{ ref('channel_quarter_grades') }}
),

kpis as (
    select * from {{ ref('fct_channel_quarter_kpis') }}
),

bands as (
    select * from {{ ref('channel_grade_bands') }}
),

yearly as (
    select
        quarters.channel_id,
        date_trunc('year', quarters.quarter)::date as year_start,
        count(*) as quarters_graded,
        avg(quarters.total_score)::numeric as annual_score,
        sum(kpis.referrals) as referrals,
        sum(kpis.referrals_evaluable) as referrals_evaluable,
        sum(kpis.referrals_converted) as referrals_converted,
        jsonb_object_agg(quarters.quarter_label, jsonb_build_object(
            'total_score', quarters.total_score, 'grade', quarters.grade
        )) as quarter_grades
    from quarters
    inner join kpis on quarters.channel_quarter_id = kpis.channel_quarter_id
    group by quarters.channel_id, date_trunc('year', quarters.quarter)::date
),

graded as (
    select distinct on (yearly.channel_id, yearly.year_start)
        yearly.*,
        bands.grade as annual_grade,
        bands.grade_rank
    from yearly
    inner join bands on yearly.annual_score >= bands.min_score
    order by yearly.channel_id asc, yearly.year_start asc, bands.min_score desc
)

select
    channel_id || '|' || extract(year from year_start)::int as channel_year_id,
    channel_id,
    extract(year from year_start)::int as rating_year,
    (year_start + interval '1 year')::date <= {{ business_date() }} as is_year_closed,
    quarters_graded,
    annual_score,
    annual_grade,
    grade_rank,
    referrals,
    referrals_evaluable,
    referrals_converted,
    {{ safe_ratio('referrals_converted', 'referrals_evaluable') }} as conversion_rate,
    quarter_grades as evidence
from graded
