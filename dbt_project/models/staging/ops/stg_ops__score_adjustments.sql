-- The latest decided appeal for each department and month (earlier decisions stay in the source).
select distinct on (department_id, month)
    department_id,
    month,
    adjusted_score,
    reason,
    requested_by,
    decided_by,
    decided_at
from {{ source('ops', 'score_adjustments') }}
order by department_id asc, month asc, decided_at desc
