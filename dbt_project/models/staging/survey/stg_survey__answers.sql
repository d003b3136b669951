-- Answers 问卷答案: one score per questionnaire, service stage 服务环节 and dimension 评分维度
-- One row per answer_id: the latest version. `is_satisfied` is the platform's flag; `is_satisfied_by_rule`
-- applies the hospital's rule (score >= var survey_satisfied_min_score) so a change of either shows.
with current_version as (
    {{ latest_version(source('survey', 'answers'), ['answer_id'], tiebreak='updated_at desc') }}
)

select
    answer_id,
    questionnaire_id,
    service_stage,
    dimension,
    score::integer as score,
    satisfied as is_satisfied,
    score >= {{ var('survey_satisfied_min_score') }} as is_satisfied_by_rule,
    updated_at,
    _batch_date as landed_batch_date,
    _source_file as source_file
from current_version
