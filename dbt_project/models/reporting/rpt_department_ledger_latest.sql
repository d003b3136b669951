-- The department ledger 科室工作台账 for the latest closed month 最近已结月份, one row per department,
-- with the department's name: what the "Department ledger" dashboard shows. Every figure is the
-- ledger's own (fct_department_month_ledger); nothing is recomputed here.
with ledger as (
    select * from {{ ref('fct_department_month_ledger') }}
),

departments as (
    select * from {{ ref('dim_departments') }}
),

latest_closed as (
    select max(month) as month
    from ledger
    where is_closed_month
)

select
    ledger.department_month_id,
    ledger.hospital_id,
    ledger.department_id,
    departments.hospital_name,
    departments.department_name,
    departments.department_kind,
    ledger.month,
    ledger.staff_total,
    ledger.doctors,
    ledger.nurses,
    ledger.senior_title_staff,
    ledger.open_beds,
    ledger.outpatient_visits,
    ledger.admissions,
    ledger.discharges,
    ledger.patient_days,
    ledger.surgeries,
    ledger.average_length_of_stay,
    ledger.average_pre_op_wait_days,
    ledger.bed_occupancy,
    ledger.revenue_total_cny,
    ledger.drug_ratio,
    ledger.consumables_ratio,
    ledger.medical_service_share,
    ledger.cost_per_outpatient_visit_cny,
    ledger.cost_per_discharge_cny,
    ledger.cost_per_outpatient_visit_yoy_growth,
    ledger.cost_per_discharge_yoy_growth
from ledger
inner join latest_closed on ledger.month = latest_closed.month
left join departments on ledger.department_id = departments.department_id
