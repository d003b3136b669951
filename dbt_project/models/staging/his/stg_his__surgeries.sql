-- Surgeries 手术 (ICD-9-CM-3) with grade 手术分级 1-4 and minimally invasive flag
-- One row per surgery_id: the latest version (late corrections re-send the whole row).
-- Personal identifiers stay in raw as pseudonyms and are not selected here.
with current_version as (
    {{ latest_version(source('his', 'surgeries'), ['surgery_id'], tiebreak='updated_at desc') }}
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
    _batch_date as landed_batch_date,
    _source_file as source_file
from current_version
