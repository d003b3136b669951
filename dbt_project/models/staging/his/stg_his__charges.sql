-- Charge items 费用 by category, per outpatient visit or per inpatient stay and month (exactly one of visit_id, stay_id)
-- One row per charge_id: the latest version (late corrections re-send the whole row). The largest HIS
-- table, so it is incremental: a night merges only the rows landed since the last build
-- (macros/latest_version.sql), and previous_charged_at tells the ledger which month a correction left
-- (previous_stay_id: which stay's cost structure, for int_insurance__cases).
-- Personal identifiers stay in raw as pseudonyms and are not selected here.
{{ config(
    materialized='incremental',
    unique_key='charge_id',
    incremental_strategy='delete+insert',
    indexes=[
        {'columns': ['charge_id'], 'unique': True},
        {'columns': ['landed_at']},
        {'columns': ['charged_at']},
        {'columns': ['stay_id']},
    ],
) }}

with current_version as (
    {{ incremental_current_version(source('his', 'charges'), 'charge_id', 'updated_at',
                                   previous_columns=['charged_at', 'stay_id']) }}
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
    previous_charged_at,
    previous_stay_id,
    _batch_date as landed_batch_date,
    _source_file as source_file,
    _row_number as source_row_number,
    _loaded_at as landed_at
from current_version
