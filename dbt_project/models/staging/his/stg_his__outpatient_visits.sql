-- Outpatient and emergency visits 门急诊就诊
-- One row per visit_id: the latest version (late corrections re-send the whole row). Incremental like
-- stg_his__charges: a night merges only the rows landed since the last build; previous_visit_at tells
-- the ledger which month a correction left.
-- Personal identifiers stay in raw as pseudonyms and are not selected here.
{{ config(
    materialized='incremental',
    unique_key='visit_id',
    incremental_strategy='delete+insert',
    indexes=[
        {'columns': ['visit_id'], 'unique': True},
        {'columns': ['landed_at']},
        {'columns': ['visit_at']},
    ],
) }}

with current_version as (
    {{ incremental_current_version(source('his', 'outpatient_visits'), 'visit_id', 'updated_at',
                                   previous_columns=['visit_at']) }}
)

select
    visit_id,
    patient_id,
    department_id,
    doctor_id,
    visit_at,
    visit_type,
    updated_at,
    previous_visit_at,
    _batch_date as landed_batch_date,
    _source_file as source_file,
    _row_number as source_row_number,
    _loaded_at as landed_at
from current_version
