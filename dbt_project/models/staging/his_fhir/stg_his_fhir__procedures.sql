-- Every FHIR Procedure 操作 with its code and code system; is_surgery and grade 手术分级 come from the seed
-- his_fhir_surgery_procedures ('ungraded' 未分级 when the seed gives no grade).
-- One row per procedure_id: the latest version. The patient is a keyed hash.
with current_version as (
    {{ latest_version(source('his_fhir', 'procedures'), ['procedure_id'], tiebreak='updated_at desc') }}
)

select
    procedure_id,
    encounter_id,
    patient_id,
    code_system,
    code,
    display,
    status,
    is_surgery,
    grade,
    performed_at,
    updated_at,
    _batch_date as landed_batch_date,
    _source_file as source_file
from current_version
