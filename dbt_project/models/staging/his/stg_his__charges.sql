-- Charge items 费用 by category, per outpatient visit or per inpatient stay and month (exactly one of visit_id, stay_id)
-- One row per charge_id: the latest version (late corrections re-send the whole row).
-- Personal identifiers stay in raw as pseudonyms and are not selected here.
with current_version as (
    {{ latest_version(source('his', 'charges'), ['charge_id'], tiebreak='updated_at desc') }}
)

select
    charge_id,
    visit_id,
    stay_id,
    department_id,
    category,
    amount_cny,
    charged_at,
    updated_at,
    _batch_date as landed_batch_date,
    _source_file as source_file
from current_version
