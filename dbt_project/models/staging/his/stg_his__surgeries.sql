-- Surgeries 手术 (ICD-9-CM-3) with grade 手术分级 1-4 and minimally invasive flag
-- One row per surgery_id: the latest version (late corrections re-send the whole row). Incremental like
-- stg_his__charges: a night merges only the rows landed since the last build; previous_stay_id and
-- previous_performed_at tell int_his__stays_enriched and the ledger which stay and month a correction left.
-- Personal identifiers stay in raw as pseudonyms and are not selected here.
{{ config(
    materialized='incremental',
    unique_key='surgery_id',
    incremental_strategy='delete+insert',
    indexes=[
        {'columns': ['surgery_id'], 'unique': True},
        {'columns': ['landed_at']},
        {'columns': ['stay_id']},
    ],
) }}

with current_version as (
    {{ incremental_current_version(source('his', 'surgeries'), 'surgery_id', 'updated_at',
                                   previous_columns=['stay_id', 'performed_at']) }}
)

select
    surgery_id,
    stay_id,
    surgeon_id,
    procedure_code,
    procedure_name,
    grade,
    minimally_invasive,
    performed_at,
    updated_at,
    previous_stay_id,
    previous_performed_at,
    _batch_date as landed_batch_date,
    _source_file as source_file,
    _row_number as source_row_number,
    _loaded_at as landed_at
from current_version
