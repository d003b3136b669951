-- Hospitals and campuses 医院/院区维度, with their Chinese names: what a dashboard prints instead of a code.
select
    hospital_id,
    hospital_name,
    campus_name,
    level,
    consortium_role
from {{ ref('stg_his__hospitals') }}
