-- Inpatient DRG/DIP settlements 住院结算清单: one row per settled case, per settlement day
-- One row per case_id: the latest delivery (a re-sent file replaces its rows). Incremental like
-- stg_his__charges: a night merges only the rows landed since the last build (a settlement has no
-- version of its own, so the latest delivery wins); int_insurance__cases recomputes those cases.
{{ config(
    materialized='incremental',
    unique_key='case_id',
    incremental_strategy='delete+insert',
    indexes=[
        {'columns': ['case_id'], 'unique': True},
        {'columns': ['landed_at']},
        {'columns': ['stay_id']},
    ],
) }}

with current_version as (
    {{ incremental_current_version(source('insurance', 'settlements'), 'case_id', none) }}
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
    _source_file as source_file,
    _row_number as source_row_number,
    _loaded_at as landed_at
from current_version
