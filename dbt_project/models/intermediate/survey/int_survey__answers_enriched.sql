-- Survey answers with their questionnaire 问卷答案明细: one row per answer, with what the questionnaire
-- was about (hospital, department, vendor, month of the visit). The satisfied flag is the hospital's
-- rule (score >= var survey_satisfied_min_score), not the platform's own flag. No patient key here.
--
-- Incremental by answer 按答案增量: a night rebuilds the answers whose version, or whose questionnaire's
-- version, landed since the last build (whose business date is the stored max(enriched_on)); every
-- other answer stays as it is. previous_visit_month is the stored visit_month the row replaced, so the
-- marts by month also rebuild the month a correction moved an answer out of. Rows of batches held or
-- released change the whole set: the runner then rebuilds with --full-refresh (hospital_ops.batches).
{{ config(
    materialized='incremental',
    unique_key='answer_id',
    incremental_strategy='delete+insert',
    indexes=[
        {'columns': ['answer_id'], 'unique': True},
        {'columns': ['enriched_on']},
        {'columns': ['visit_month']},
    ],
) }}
{%- set bookmark = incremental_bookmark('enriched_on') if is_incremental() else none %}

with answers as (
    select * from {{ ref('stg_survey__answers') }}
),

questionnaires as (
    select * from {{ ref('stg_survey__questionnaires') }}
),

{% if is_incremental() %}
answers_to_build as (
    -- the answers landed, and the answers of the questionnaires landed (a union of two filters, not
    -- one filter ORed with an IN list)
    select answers.*
    from answers
    where answers.landed_batch_date > {{ bookmark }}
    union
    select answers.*
    from answers
    inner join questionnaires on answers.questionnaire_id = questionnaires.questionnaire_id
    where questionnaires.landed_batch_date > {{ bookmark }}
),
{% else %}
answers_to_build as (
    select * from answers
),
{% endif %}

enriched as (
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
    from answers_to_build as answers
    inner join questionnaires on answers.questionnaire_id = questionnaires.questionnaire_id
)

select
    enriched.answer_id,
    enriched.questionnaire_id,
    enriched.questionnaire_type,
    enriched.hospital_id,
    enriched.department_id,
    enriched.vendor_id,
    enriched.visit_date,
    enriched.visit_month,
    enriched.service_stage,
    enriched.dimension,
    enriched.score,
    enriched.is_satisfied_by_rule,
    {{ business_date() }} as enriched_on,
    {% if is_incremental() -%}
    kept.visit_month as previous_visit_month
    {%- else -%}
    case when false then enriched.visit_month end as previous_visit_month
    {%- endif %}
from enriched
{% if is_incremental() -%}
left join {{ this }} as kept on enriched.answer_id = kept.answer_id
{%- endif %}
