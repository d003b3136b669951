-- Window-service ratings 窗口评价: a patient's rating of a service window
-- One row per rating_id: the latest version.
with current_version as (
    {{ latest_version(source('survey', 'window_ratings'), ['rating_id'], tiebreak='updated_at desc') }}
)

select
    rating_id,
    hospital_id,
    department_id,
    window_no,
    window_service,
    rated_at,
    date_trunc('month', rated_at)::date as rated_month,
    score::integer as score,
    score >= {{ var('survey_satisfied_min_score') }} as is_satisfied_by_rule,
    updated_at,
    _batch_date as landed_batch_date,
    _source_file as source_file
from current_version
