-- Vendor satisfaction measured by the hospital 第三方服务满意度（医院调查）: one row per vendor per month,
-- from the vendor_service questionnaires of patients a third-party vendor served (macro
-- satisfaction_measures). fct_vendor_month_kpis uses this rate for the satisfaction rules when the
-- month meets var survey_min_sample_for_vendor_rate questionnaires.
with answers as (
    select * from {{ ref('int_survey__answers_enriched') }}
    where questionnaire_type = 'vendor_service' and vendor_id is not null
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
    questionnaires >= {{ var('survey_min_sample_for_vendor_rate') }} as meets_min_sample
from measured
