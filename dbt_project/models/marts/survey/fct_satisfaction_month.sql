-- Department satisfaction 科室满意度, one row per department per month with surveyed encounters
-- (outpatient and inpatient questionnaires 门诊/住院问卷; questionnaires about a third-party vendor's
-- service count for the vendor, in fct_vendor_month_satisfaction). Satisfaction rate = satisfied
-- answers / answers (macro satisfaction_measures). Minimum-sample rule 最少样本量: a department-month
-- with fewer than var survey_min_sample_for_ranking questionnaires is shown but not ranked.
--
-- Incremental by month 按月增量: a night rebuilds only the visit months of the answers
-- int_survey__answers_enriched rebuilt since this mart's last build (and the months a correction moved
-- an answer out of); every other month stays as it is (macro months_touched_since_last_build).
-- `dbt build --full-refresh` rebuilds every month and must give the same table.
{{ config(
    materialized='incremental',
    unique_key='month',
    incremental_strategy='delete+insert',
    indexes=[{'columns': ['department_id', 'month'], 'unique': True}],
) }}

with
{% if is_incremental() %}
months_to_build as (
    {{ months_touched_since_last_build(ref('int_survey__answers_enriched'), 'enriched_on',
                                       ['changed.visit_month', 'changed.previous_visit_month']) }}
),
{% endif %}

answers as (
    select * from {{ ref('int_survey__answers_enriched') }}
    where
        questionnaire_type in ('outpatient', 'inpatient')
        {% if is_incremental() -%}
        and visit_month in (select months_to_build.month from months_to_build)
        {%- endif %}
),

measured as (
    select
        answers.department_id,
        answers.hospital_id,
        answers.visit_month as month,
        {{ satisfaction_measures('answers') }}
    from answers
    group by 1, 2, 3
),

ruled as (
    select
        *,
        questionnaires >= {{ var('survey_min_sample_for_ranking') }} as meets_min_sample
    from measured
)

select
    department_id || '|' || to_char(month, 'YYYY-MM') as department_month_id,
    department_id,
    hospital_id,
    month,
    questionnaires,
    answers,
    satisfied_answers,
    satisfaction_rate,
    mean_score,
    meets_min_sample,
    {{ var('survey_min_sample_for_ranking') }} as min_sample,
    -- rank among the month's departments that meet the minimum sample (1 = most satisfied)
    case
        when meets_min_sample
            then
                rank() over (partition by month, meets_min_sample order by satisfaction_rate desc)
    end as satisfaction_rank,
    {{ business_date() }} as built_on
from ruled
