-- Diagnoses of a stay 出院诊断 (ICD-10), the primary one and complications arising during it
-- One row per stay_id, seq_no: the latest version (late corrections re-send the whole row).
-- Personal identifiers stay in raw as pseudonyms and are not selected here.
with current_version as (
    {{ latest_version(source('his', 'diagnoses'), ['stay_id', 'seq_no'], tiebreak='updated_at desc') }}
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
    _source_file as source_file
from current_version
