-- Inpatient DRG/DIP settlements 住院结算清单: one row per settled case, per settlement day
-- One row per case_id: the latest delivery (a re-sent file replaces its rows).
with current_version as (
    {{ latest_version(source('insurance', 'settlements'), ['case_id']) }}
)

select
    case_id,
    stay_id,
    hospital_id,
    insurance_type,
    settled_on,
    discharge_date,
    drg_code,
    drg_name,
    relative_weight,
    dip_group,
    dip_points,
    insurer_payment_cny,
    patient_copay_cny,
    case_cost_cny,
    los_days,
    _batch_date as landed_batch_date,
    _source_file as source_file
from current_version
