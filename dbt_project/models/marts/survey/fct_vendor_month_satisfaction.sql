-- Vendor satisfaction measured by the hospital 第三方服务满意度（医院调查）: one row per vendor per month,
-- from the vendor_service questionnaires of patients a third-party vendor served (macro
-- satisfaction_measures). fct_vendor_month_kpis uses this rate for the satisfaction rules when the
-- month meets var survey_min_sample_for_vendor_rate questionnaires.
--
-- Incremental by month 按月增量: a night rebuilds only the visit months of the answers
-- int_survey__answers_enriched rebuilt since this mart's last build (and the months a correction moved
-- an answer out of); every other month stays as it is (macro months_touched_since_last_build).
-- `dbt build --full-refresh` rebuilds every month and must give the same table.
{{ config(
    materialized='incremental',
    unique_key='month',
    incremental_strategy='delete+insert',
    indexes=[{'columns': ['vendor_id', 'month'], 'unique': True}],
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
        questionnaire_type = 'vendor_service' and vendor_id is not null
        {% if is_incremental() -%}
        and visit_month in (select months_to_build.month from months_to_build)
        {%- endif %}
),

measured as (
    select
        answers.vendor_id,
        answers.visit_month as month,
        {{ satisfaction_measures('answers') }}
    from answers
    group by 1, 2
)

select
    vendor_id || '|' || to_char(month, 'YYYY-MM') as vendor_month_id,
    vendor_id,
    month,
    questionnaires,
    answers,
    satisfied_answers,
    satisfaction_rate,
    mean_score,
    questionnaires >= {{ var('survey_min_sample_for_vendor_rate') }} as meets_min_sample,
    {{ business_date() }} as built_on
from measured
