-- Department performance score 科室绩效评分, one row per clinical department per closed month.
-- Each indicator of seed department_score_weights scores 0–100 by its mid-rank percentile among the
-- month's departments with at least `score_min_discharges` discharges (direction from the seed; ties
-- share the mean percentile of the places they span); an indicator without cases is not scored; the score is the
-- weighted mean over the indicators the department has (weights re-normalised when one is missing).
-- An upheld appeal 异议 (ops.score_adjustments, append-only) sets the final score, and the row shows
-- both values with who, when and why: the computed score is never edited.
with kpis as (
    select * from {{ ref('fct_department_month_kpis') }}
    where is_complete_month and discharges >= {{ var('score_min_discharges') }}
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
    select
        department_id,
        hospital_id,
        month,
        '{{ indicator }}' as indicator,
        {% if indicator in guarded %}
        case when {{ guarded[indicator] }} then {{ indicator }} end
        {% else %}{{ indicator }}{% endif %}::numeric
            as value
    from kpis
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
),

ranked as (
    -- worst-first rank inside the month and indicator (direction from the weights seed), and the size
    -- of each tie
    select
        indicator_values.*,
        weights.dimension,
        weights.weight,
        weights.direction,
        count(*) over peers as peers,
        case weights.direction
            when 'higher_is_better'
                then rank() over (
                    partition by indicator_values.month, indicator_values.indicator
                    order by indicator_values.value
                )
            else rank() over (
                partition by indicator_values.month, indicator_values.indicator
                order by indicator_values.value desc
            )
        end as worst_first_rank,
        count(*) over (partition by indicator_values.month, indicator_values.indicator, indicator_values.value)
            as tied
    from indicator_values
    inner join weights on indicator_values.indicator = weights.indicator
    where indicator_values.value is not null
    window peers as (partition by indicator_values.month, indicator_values.indicator)
),

scored as (
    -- mid-rank percentile 平均秩百分位: departments tied on a value share the mean of the percentiles
    -- their tie spans, (departments strictly worse + (tied − 1) / 2) / (peers − 1), so a tie at the
    -- best value scores high and the scores of a month always average 50. Full precision.
    select
        ranked.*,
        case
            when ranked.peers = 1 then 100
            else 100 * ((ranked.worst_first_rank - 1) + (ranked.tied - 1) / 2.0) / (ranked.peers - 1)
        end as indicator_score
    from ranked
),

not_scored as (
    -- an indicator a department has no cases for (null value) is not scored 不参评, never scored worst
    select
        indicator_values.department_id,
        indicator_values.month,
        jsonb_agg(indicator_values.indicator order by indicator_values.indicator) as indicators
    from indicator_values
    inner join weights on indicator_values.indicator = weights.indicator
    where indicator_values.value is null
    group by indicator_values.department_id, indicator_values.month
),

computed as (
    select
        scored.department_id,
        scored.hospital_id,
        scored.month,
        trim_scale(sum(scored.indicator_score * scored.weight) / nullif(sum(scored.weight), 0)) as computed_score,
        jsonb_object_agg(scored.indicator, jsonb_build_object(
            'value',
            scored.value,
            'score',
            scored.indicator_score,
            'weight',
            scored.weight,
            'dimension',
            scored.dimension,
            'direction', scored.direction, 'peers', scored.peers, 'tied', scored.tied
        )) as evidence
    from scored
    group by scored.department_id, scored.hospital_id, scored.month
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
    rank() over (
        partition by computed.month
        order by coalesce(adjustments.adjusted_score, computed.computed_score) desc
    ) as score_rank,
    computed.evidence || jsonb_build_object('not_scored', coalesce(not_scored.indicators, '[]'::jsonb))
        as evidence
from computed
left join not_scored on computed.department_id = not_scored.department_id and computed.month = not_scored.month
left join adjustments
    on computed.department_id = adjustments.department_id and computed.month = adjustments.month
