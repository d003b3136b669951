-- Hospital operations ledger 全院工作台账: one row per hospital per month, the departments' ledger summed.
-- Counts and amounts are sums of the department rows; ratios are recomputed from those sums with the
-- same macro (macros/ledger_ratios.sql). tests/assert_ledger_reconciles_to_source.sql checks that the
-- hospitals sum to the departments and to the source.
{%- set additive_columns = [
    'staff_total', 'doctors', 'nurses', 'technicians', 'admin_staff', 'senior_title_staff',
    'open_beds', 'open_bed_days', 'equipment_count', 'equipment_value_cny',
    'outpatient_visits', 'admissions', 'discharges', 'discharge_patient_days', 'patient_days',
    'surgical_discharges', 'pre_op_wait_days_total', 'surgeries', 'surgeries_grade_1', 'surgeries_grade_2',
    'surgeries_grade_3', 'surgeries_grade_4', 'surgeries_ungraded', 'minimally_invasive_surgeries',
    'revenue_total_cny', 'revenue_drug_cny', 'revenue_consumables_cny', 'revenue_medical_service_cny',
    'revenue_exam_lab_cny', 'revenue_outpatient_cny', 'revenue_inpatient_cny'] %}

with department_ledger as (
    select * from {{ ref('fct_department_month_ledger') }}
),

hospitals as (
    select * from {{ ref('stg_his__hospitals') }}
),

summed as (
    select
        hospital_id,
        month,
        bool_and(is_closed_month) as is_closed_month,
        count(*) as departments,
    {%- for column in additive_columns %}
    sum({{ column }}) as {{ column }}{{ "," if not loop.last }}
    {%- endfor %}
    from department_ledger
    group by hospital_id, month
),

ratios as (
    select
        *,
        {{ ledger_ratios() | indent(8) }}
    from summed
)

select
    ratios.hospital_id || '|' || to_char(ratios.month, 'YYYY-MM') as hospital_month_id,
    hospitals.hospital_name,
    ratios.*,
    {{ yoy_growth('ratios.cost_per_outpatient_visit_cny', 'year_earlier.cost_per_outpatient_visit_cny') }}
        as cost_per_outpatient_visit_yoy_growth,
    {{ yoy_growth('ratios.cost_per_discharge_cny', 'year_earlier.cost_per_discharge_cny') }}
        as cost_per_discharge_yoy_growth
from ratios
left join hospitals on ratios.hospital_id = hospitals.hospital_id
left join ratios as year_earlier
    on
        ratios.hospital_id = year_earlier.hospital_id
        and year_earlier.month = (ratios.month - interval '12 months')::date
