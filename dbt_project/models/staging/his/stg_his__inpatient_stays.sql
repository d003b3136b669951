-- Inpatient stays 住院 from the front page of the medical record 病案首页
-- One row per stay_id: the latest version (late corrections re-send the whole row). Incremental like
-- stg_his__charges: a night merges only the rows landed since the last build; previous_admitted_at,
-- previous_discharged_at and previous_patient_id tell int_his__stays_enriched and the ledger which
-- stays (the same patient's, for readmission) and months a correction left.
-- Personal identifiers stay in raw as pseudonyms and are not selected here.
{{ config(
    materialized='incremental',
    unique_key='stay_id',
    incremental_strategy='delete+insert',
    indexes=[
        {'columns': ['stay_id'], 'unique': True},
        {'columns': ['landed_at']},
        {'columns': ['patient_id']},
        {'columns': ['department_id']},
    ],
) }}

with current_version as (
    {{ incremental_current_version(source('his', 'inpatient_stays'), 'stay_id', 'updated_at',
                                   previous_columns=['patient_id', 'admitted_at', 'discharged_at']) }}
)

select
    stay_id,
    patient_id,
    department_id,
    attending_doctor_id,
    admitted_at,
    discharged_at,
    discharge_disposition,
    planned_readmission,
    updated_at,
    previous_patient_id,
    previous_admitted_at,
    previous_discharged_at,
    _batch_date as landed_batch_date,
    _source_file as source_file,
    _row_number as source_row_number,
    _loaded_at as landed_at
from current_version
