-- Departments 科室: clinical, medical-technical 医技 and administrative
-- One row per department_id: the latest version (late corrections re-send the whole row). A register of
-- tens of rows, so a view read whole; landed_at tells int_his__stays_enriched which departments changed.
-- Personal identifiers stay in raw as pseudonyms and are not selected here.
with current_version as (
    {{ latest_version(source('his', 'departments'), ['department_id'], tiebreak='updated_at desc') }}
)

select
    department_id,
    hospital_id,
    department_name,
    kind,
    updated_at,
    _batch_date as landed_batch_date,
    _source_file as source_file,
    _loaded_at as landed_at
from current_version
