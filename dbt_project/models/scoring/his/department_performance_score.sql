-- Department performance score 科室绩效评分, one row per clinical department per closed month.
-- Each indicator of seed department_score_weights scores 0–100 by its percentile among the month's
-- departments with at least `score_min_discharges` discharges (direction-aware); the score is the
-- weighted mean over the indicators the department has (weights re-normalised when one is missing).
-- An upheld appeal 异议 (ops.score_adjustments, append-only) sets the final score, and the row shows
-- both values with who, when and why: the computed score is never edited.
with kpis as (
    select * from {{ ref('fct_department_month_kpis') }}
    where is_closed_month and discharges >= {{ var('score_min_discharges') }}
),

weights as (
    select * from {{ ref('department_score_weights') }}
),

adjustments as (
    select * from {{ ref('stg_ops__score_adjustments') }}
),

indicator_values as (
    {%- set indicators = ['complication_rate', 'unplanned_readmission_rate_31d', 'mortality_rate',
                          'senior_title_share', 'bed_occupancy', 'average_length_of_stay', 'case_mix_index',
                          'level4_surgery_share', 'drug_ratio', 'consumables_ratio', 'medical_service_share',
                          'satisfaction_rate'] %}
    {#- satisfaction is scored only where the month meets the survey's minimum sample -#}
    {%- set guarded = {'satisfaction_rate': 'satisfaction_meets_min_sample'} %}
    {%- for indicator in indicators %}
    select department_id, hospital_id, month, '{{ indicator }}' as indicator,
        {% if indicator in guarded %}case when {{ guarded[indicator] }} then {{ indicator }} end{% else %}{{ indicator }}{% endif %}::numeric as value
    from kpis
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
),

scored as (
    select
        indicator_values.*,
        weights.dimension,
        weights.weight,
        weights.direction,
        round(100 * (case
            when count(*) over peers = 1 then 1
            when weights.direction = 'higher_is_better'
                then percent_rank() over (partition by indicator_values.month, indicator_values.indicator
                                          order by indicator_values.value)
            else percent_rank() over (partition by indicator_values.month, indicator_values.indicator
                                      order by indicator_values.value desc)
        end)::numeric, 1) as indicator_score
    from indicator_values
    inner join weights on weights.indicator = indicator_values.indicator
    where indicator_values.value is not null
    window peers as (partition by indicator_values.month, indicator_values.indicator)
),

computed as (
    select
        department_id,
        hospital_id,
        month,
        round(sum(indicator_score * weight) / nullif(sum(weight), 0), 1) as computed_score,
        jsonb_object_agg(indicator, jsonb_build_object(
            'value', value, 'score', indicator_score, 'weight', weight, 'dimension', dimension,
            'direction', direction)) as evidence
    from scored
    group by department_id, hospital_id, month
)

select
    computed.department_id || '|' || to_char(computed.month, 'YYYY-MM') as department_month_id,
    computed.department_id,
    computed.hospital_id,
    computed.month,
    computed.computed_score,
    coalesce(adjustments.adjusted_score, computed.computed_score) as final_score,
    adjustments.adjusted_score is not null as is_adjusted,
    adjustments.reason as adjustment_reason,
    adjustments.requested_by as adjustment_requested_by,
    adjustments.decided_by as adjustment_decided_by,
    adjustments.decided_at as adjustment_decided_at,
    rank() over (partition by computed.month
                 order by coalesce(adjustments.adjusted_score, computed.computed_score) desc) as score_rank,
    computed.evidence
from computed
left join adjustments
    on adjustments.department_id = computed.department_id and adjustments.month = computed.month
