-- Satisfaction by service stage and dimension 分环节、分维度满意度: one row per department, month,
-- service stage 服务环节 and rating dimension 评分维度 (outpatient and inpatient questionnaires), with
-- the same measures as fct_satisfaction_month (macro satisfaction_measures). The department-month's
-- minimum-sample flag is carried so a small cell is not read as a finding.
--
-- Incremental by month 按月增量: a night rebuilds only the visit months of the answers
-- int_survey__answers_enriched rebuilt since this mart's last build (and the months a correction moved
-- an answer out of); every other month stays as it is (macro months_touched_since_last_build).
-- `dbt build --full-refresh` rebuilds every month and must give the same table.
{{ config(
    materialized='incremental',
    unique_key='month',
    incremental_strategy='delete+insert',
    indexes=[{'columns': ['department_id', 'month', 'service_stage', 'dimension'], 'unique': True}],
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

department_months as (
    select * from {{ ref('fct_satisfaction_month') }}
),

measured as (
    select
        answers.department_id,
        answers.hospital_id,
        answers.visit_month as month,
        answers.service_stage,
        answers.dimension,
        {{ satisfaction_measures('answers') }}
    from answers
    group by 1, 2, 3, 4, 5
)

select
    measured.department_id || '|' || to_char(measured.month, 'YYYY-MM') || '|' || measured.service_stage
    || '|' || measured.dimension as stage_dimension_month_id,
    measured.department_id,
    measured.hospital_id,
    measured.month,
    measured.service_stage,
    measured.dimension,
    measured.questionnaires,
    measured.answers,
    measured.satisfied_answers,
    measured.satisfaction_rate,
    measured.mean_score,
    department_months.meets_min_sample as department_meets_min_sample,
    {{ business_date() }} as built_on
from measured
inner join department_months
    on measured.department_id = department_months.department_id and measured.month = department_months.month
