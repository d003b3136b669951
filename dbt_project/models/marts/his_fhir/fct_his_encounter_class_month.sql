-- Encounters by class 按就诊类别统计, per hospital, department and month (hospital time), on a FHIR HIS:
-- one count per FHIR Encounter (every class, including those that are neither a visit nor a stay), the
-- category from the seed his_fhir_encounter_classes, and how many fell in the unmapped department 未映射科室.
with encounters as (
    select
        *,
        date_trunc('month', started_at)::date as month_start,
        coalesce(class_code, 'unknown') as class_key
    from {{ ref('stg_his_fhir__encounters') }}
)

select
    concat_ws('|', hospital_id, department_id, month_start, category, class_key) as row_key,
    hospital_id,
    department_id,
    month_start,
    category,
    class_key as class_code,
    count(*) as encounters,
    count(*) filter (where not department_mapped) as encounters_unmapped_department
from encounters
group by hospital_id, department_id, month_start, category, class_key
