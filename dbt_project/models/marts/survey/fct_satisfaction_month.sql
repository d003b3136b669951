-- Department satisfaction 科室满意度, one row per department per month with surveyed encounters
-- (outpatient and inpatient questionnaires 门诊/住院问卷; questionnaires about a third-party vendor's
-- service count for the vendor, in fct_vendor_month_satisfaction). Satisfaction rate = satisfied
-- answers / answers (macro satisfaction_measures). Minimum-sample rule 最少样本量: a department-month
-- with fewer than var survey_min_sample_for_ranking questionnaires is shown but not ranked.
with answers as (
    select * from {{ ref('int_survey__answers_enriched') }}
    where questionnaire_type in ('outpatient', 'inpatient')
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
    end as satisfaction_rank
from ruled
