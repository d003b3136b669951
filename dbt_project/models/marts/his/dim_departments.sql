-- Departments 科室维度, with their Chinese names and their hospital's: what a dashboard prints instead of
-- a code such as H01-GSUR.
with departments as (
    select * from {{ ref('stg_his__departments') }}
),

hospitals as (
    select * from {{ ref('stg_his__hospitals') }}
)

select
    departments.department_id,
    departments.hospital_id,
    departments.department_name,
    departments.kind as department_kind,
    hospitals.hospital_name,
    hospitals.hospital_name || ' ' || departments.department_name as department_label
from departments
left join hospitals on departments.hospital_id = hospitals.hospital_id
