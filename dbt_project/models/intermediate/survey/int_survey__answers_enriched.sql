-- Survey answers with their questionnaire 问卷答案明细: one row per answer, with what the questionnaire
-- was about (hospital, department, vendor, month of the visit). The satisfied flag is the hospital's
-- rule (score >= var survey_satisfied_min_score), not the platform's own flag. No patient key here.
with answers as (
    select * from {{ ref('stg_survey__answers') }}
),

questionnaires as (
    select * from {{ ref('stg_survey__questionnaires') }}
)

select
    answers.answer_id,
    answers.questionnaire_id,
    questionnaires.questionnaire_type,
    questionnaires.hospital_id,
    questionnaires.department_id,
    questionnaires.vendor_id,
    questionnaires.visit_date,
    questionnaires.visit_month,
    answers.service_stage,
    answers.dimension,
    answers.score,
    answers.is_satisfied_by_rule
from answers
inner join questionnaires on answers.questionnaire_id = questionnaires.questionnaire_id
