-- Diagnoses of a stay 出院诊断 (ICD-10), the primary one and complications arising during it
-- One row per stay_id, seq_no: the latest version (late corrections re-send the whole row). Incremental
-- like stg_his__charges: a night merges only the rows landed since the last build, and
-- int_his__stays_enriched recomputes the stays they belong to (the key holds the stay, so a correction
-- never moves a diagnosis to another stay).
-- Personal identifiers stay in raw as pseudonyms and are not selected here.
{{ config(
    materialized='incremental',
    unique_key=['stay_id', 'seq_no'],
    incremental_strategy='delete+insert',
    indexes=[
        {'columns': ['stay_id', 'seq_no'], 'unique': True},
        {'columns': ['landed_at']},
    ],
) }}

with current_version as (
    {{ incremental_current_version(source('his', 'diagnoses'), ['stay_id', 'seq_no'], 'updated_at') }}
)

select
    stay_id,
    seq_no,
    icd10_code,
    diagnosis_name,
    is_primary,
    is_complication,
    updated_at,
    _batch_date as landed_batch_date,
    _source_file as source_file,
    _row_number as source_row_number,
    _loaded_at as landed_at
from current_version
