-- The latest action on each warning (acknowledge or resolve), with who took it, when and why.
select distinct on (warning_id)
    warning_id,
    action,
    actor,
    note,
    acted_at
from {{ source('ops', 'warning_actions') }}
order by warning_id asc, acted_at desc
