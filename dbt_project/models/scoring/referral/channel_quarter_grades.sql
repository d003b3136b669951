-- Quarterly channel evaluation 渠道季度评价: one row per channel per quarter. Each component of seed
-- channel_grade_weights scores 0–100 on its line from floor to target (macro linear_score); the total
-- is the weighted mean over the components the quarter has (satisfaction only when its minimum
-- sample is met; weights re-normalised, and is_grade_partial / components_not_scored say which
-- components were left out); the grade is the best band of seed channel_grade_bands the
-- total reaches. The previous quarter's grade sits beside it, so a downgrade is visible. A quarter
-- in progress is graded on what has come in so far (is_quarter_closed false).
with kpis as (
    select * from {{ ref('fct_channel_quarter_kpis') }}
),

weights as (
    select * from {{ ref('channel_grade_weights') }}
),

bands as (
    select * from {{ ref('channel_grade_bands') }}
),

indicator_values as (
    select
        channel_id,
        quarter,
        'conversion_rate' as indicator,
        conversion_rate::numeric as value
    from kpis
    union all
    select
        channel_id,
        quarter,
        'referred_satisfaction_rate' as indicator,
        case when referred_satisfaction_meets_min_sample then referred_satisfaction_rate end as value
    from kpis
    union all
    select
        channel_id,
        quarter,
        'median_response_minutes' as indicator,
        median_response_minutes::numeric as value
    from kpis
),

scored as (
    select
        indicator_values.*,
        weights.component,
        weights.weight,
        weights.floor,
        weights.target,
        {{ linear_score('indicator_values.value', 'weights.floor', 'weights.target') }} as component_score
    from indicator_values
    inner join weights on indicator_values.indicator = weights.indicator
    where indicator_values.value is not null
),

not_scored as (
    -- components without a value (e.g. satisfaction below its minimum sample): left out, weights
    -- re-normalised, and the grade says so
    select
        indicator_values.channel_id,
        indicator_values.quarter,
        jsonb_agg(weights.component order by weights.component) as components
    from indicator_values
    inner join weights on indicator_values.indicator = weights.indicator
    where indicator_values.value is null
    group by indicator_values.channel_id, indicator_values.quarter
),

totals as (
    select
        channel_id,
        quarter,
        {{ safe_ratio('sum(component_score * weight)', 'sum(weight)') }} as total_score,
        jsonb_object_agg(component, jsonb_build_object(
            'indicator', indicator, 'value', value, 'score', component_score, 'weight', weight,
            'floor', floor, 'target', target
        )) as components
    from scored
    group by channel_id, quarter
),

graded as (
    select distinct on (totals.channel_id, totals.quarter)
        totals.*,
        bands.grade,
        bands.grade_rank,
        bands.min_score as grade_min_score
    from totals
    inner join bands on totals.total_score >= bands.min_score
    order by totals.channel_id asc, totals.quarter asc, bands.min_score desc
)

select
    kpis.channel_quarter_id,
    kpis.channel_id,
    kpis.channel_type,
    kpis.tier,
    kpis.quarter,
    kpis.quarter_label,
    kpis.is_quarter_closed,
    kpis.referrals,
    kpis.conversion_rate,
    kpis.referred_satisfaction_rate,
    kpis.median_response_minutes,
    graded.total_score,
    graded.grade,
    graded.grade_rank,
    lag(graded.grade) over same_channel as previous_grade,
    lag(graded.grade_rank) over same_channel as previous_grade_rank,
    lag(kpis.quarter_label) over same_channel as previous_quarter_label,
    graded.grade_rank > lag(graded.grade_rank) over same_channel as is_downgrade,
    not_scored.components is not null as is_grade_partial,
    coalesce(not_scored.components, '[]'::jsonb) as components_not_scored,
    jsonb_build_object(
        'components', graded.components,
        'referrals', kpis.referrals,
        'referrals_evaluable', kpis.referrals_evaluable,
        'referrals_converted', kpis.referrals_converted,
        'referred_questionnaires', kpis.referred_questionnaires,
        'satisfaction_min_sample', {{ var('survey_min_sample_for_channel_rate') }},
        'grade_min_score', graded.grade_min_score
    ) as evidence
from kpis
inner join graded on kpis.channel_id = graded.channel_id and kpis.quarter = graded.quarter
left join not_scored on kpis.channel_id = not_scored.channel_id and kpis.quarter = not_scored.quarter
window same_channel as (partition by kpis.channel_id order by kpis.quarter)
