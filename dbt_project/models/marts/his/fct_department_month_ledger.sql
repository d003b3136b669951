-- Operations ledger 工作台账: one row per department per month. Every ratio sits beside its parts,
-- and the parts reconcile: departments sum to hospital totals and to the source totals (tests in
-- tests/assert_ledger_*.sql).
with departments as (
    select * from {{ ref('stg_his__departments') }}
),

stays as (
    select * from {{ ref('int_his__stays_enriched') }}
),

charges as (
    select * from {{ ref('stg_his__charges') }}
),

visits as (
    select * from {{ ref('stg_his__outpatient_visits') }}
),

staff_members as (
    select * from {{ ref('stg_his__staff') }}
),

bed_register as (
    select * from {{ ref('stg_his__beds') }}
),

equipment_register as (
    select * from {{ ref('stg_his__equipment') }}
),

operations as (
    select * from {{ ref('stg_his__surgeries') }}
),

activity as (
    select min(visit_at)::date as first_day from visits
    union all
    select min(admitted_at)::date from stays
    union all
    select min(charged_at)::date from charges
),

spine as (
    select
        departments.department_id,
        departments.hospital_id,
        months.month::date as month,
        (months.month + interval '1 month' - interval '1 day')::date as month_end,
        extract(day from months.month + interval '1 month' - interval '1 day')::int as days_in_month
    from departments
    cross join generate_series(
        date_trunc('month', (select min(first_day) from activity)),
        date_trunc('month', {{ business_date() }}),
        interval '1 month'
    ) as months (month)
),

staff as (
    select
        spine.department_id,
        spine.month,
        count(*) as staff_total,
        count(*) filter (where staff.role = 'doctor') as doctors,
        count(*) filter (where staff.role = 'nurse') as nurses,
        count(*) filter (where staff.role = 'technician') as technicians,
        count(*) filter (where staff.role = 'admin') as admin_staff,
        count(*) filter (where staff.title_grade in ('正高', '副高')) as senior_title_staff
    from spine
    inner join staff_members as staff
        on staff.department_id = spine.department_id
        and staff.hired_on <= spine.month_end
        and (staff.left_on is null or staff.left_on > spine.month_end)
    group by 1, 2
),

beds as (
    -- 实际开放床日数: days each bed was open within the month; 开放床位 at month end
    select
        spine.department_id,
        spine.month,
        count(*) filter (where beds.open_from <= spine.month_end
                           and (beds.open_to is null or beds.open_to >= spine.month_end)) as open_beds,
        sum(greatest(0, least(coalesce(beds.open_to, spine.month_end), spine.month_end)
                        - greatest(beds.open_from, spine.month) + 1)) as open_bed_days
    from spine
    inner join bed_register as beds on beds.department_id = spine.department_id
    group by 1, 2
),

equipment as (
    select
        spine.department_id,
        spine.month,
        count(*) as equipment_count,
        sum(equipment.purchase_value_cny) as equipment_value_cny
    from spine
    inner join equipment_register as equipment
        on equipment.department_id = spine.department_id
        and equipment.acquired_on <= spine.month_end
        and (equipment.retired_on is null or equipment.retired_on > spine.month_end)
    group by 1, 2
),

outpatient as (
    select department_id, date_trunc('month', visit_at)::date as month, count(*) as outpatient_visits
    from visits
    group by 1, 2
),

admissions as (
    select department_id, date_trunc('month', admitted_at)::date as month, count(*) as admissions
    from stays
    group by 1, 2
),

discharges as (
    select
        department_id,
        date_trunc('month', discharged_at)::date as month,
        count(*) as discharges,
        sum(los_days) as discharge_patient_days,
        count(*) filter (where surgeries > 0) as surgical_discharges,
        sum(pre_op_wait_days) filter (where surgeries > 0) as pre_op_wait_days_total
    from stays
    where discharged_at is not null
    group by 1, 2
),

patient_days as (
    -- 实际占用床日数: midnights spent in hospital within the month (still in hospital: up to the business date)
    select
        spine.department_id,
        spine.month,
        sum(greatest(0,
            least(coalesce(stays.discharged_at::date, {{ business_date() }} + 1), spine.month_end + 1)
            - greatest(stays.admitted_at::date, spine.month))) as patient_days
    from spine
    inner join stays
        on stays.department_id = spine.department_id
        and stays.admitted_at::date <= spine.month_end
        and (stays.discharged_at is null or stays.discharged_at::date > spine.month)
    group by 1, 2
),

surgeries as (
    select
        stays.department_id,
        date_trunc('month', surgeries.performed_at)::date as month,
        count(*) as surgeries,
        count(*) filter (where surgeries.grade = 1) as surgeries_grade_1,
        count(*) filter (where surgeries.grade = 2) as surgeries_grade_2,
        count(*) filter (where surgeries.grade = 3) as surgeries_grade_3,
        count(*) filter (where surgeries.grade = 4) as surgeries_grade_4,
        count(*) filter (where surgeries.minimally_invasive) as minimally_invasive_surgeries
    from operations as surgeries
    inner join stays on stays.stay_id = surgeries.stay_id
    group by 1, 2
),

revenue as (
    select
        department_id,
        date_trunc('month', charged_at)::date as month,
        sum(amount_cny) as revenue_total_cny,
        sum(amount_cny) filter (where category = 'drug') as revenue_drug_cny,
        sum(amount_cny) filter (where category = 'consumables') as revenue_consumables_cny,
        sum(amount_cny) filter (where category = 'medical_service') as revenue_medical_service_cny,
        sum(amount_cny) filter (where category = 'exam_lab') as revenue_exam_lab_cny,
        sum(amount_cny) filter (where visit_id is not null) as revenue_outpatient_cny,
        sum(amount_cny) filter (where stay_id is not null) as revenue_inpatient_cny
    from charges
    group by 1, 2
),

joined as (
    select
        spine.department_id,
        spine.hospital_id,
        spine.month,
        spine.month_end,
        spine.days_in_month,
        spine.month_end < {{ business_date() }} as is_closed_month,
        coalesce(staff.staff_total, 0) as staff_total,
        coalesce(staff.doctors, 0) as doctors,
        coalesce(staff.nurses, 0) as nurses,
        coalesce(staff.technicians, 0) as technicians,
        coalesce(staff.admin_staff, 0) as admin_staff,
        coalesce(staff.senior_title_staff, 0) as senior_title_staff,
        coalesce(beds.open_beds, 0) as open_beds,
        coalesce(beds.open_bed_days, 0) as open_bed_days,
        coalesce(equipment.equipment_count, 0) as equipment_count,
        coalesce(equipment.equipment_value_cny, 0) as equipment_value_cny,
        coalesce(outpatient.outpatient_visits, 0) as outpatient_visits,
        coalesce(admissions.admissions, 0) as admissions,
        coalesce(discharges.discharges, 0) as discharges,
        coalesce(discharges.discharge_patient_days, 0) as discharge_patient_days,
        coalesce(patient_days.patient_days, 0) as patient_days,
        coalesce(discharges.surgical_discharges, 0) as surgical_discharges,
        coalesce(discharges.pre_op_wait_days_total, 0) as pre_op_wait_days_total,
        coalesce(surgeries.surgeries, 0) as surgeries,
        coalesce(surgeries.surgeries_grade_1, 0) as surgeries_grade_1,
        coalesce(surgeries.surgeries_grade_2, 0) as surgeries_grade_2,
        coalesce(surgeries.surgeries_grade_3, 0) as surgeries_grade_3,
        coalesce(surgeries.surgeries_grade_4, 0) as surgeries_grade_4,
        coalesce(surgeries.minimally_invasive_surgeries, 0) as minimally_invasive_surgeries,
        coalesce(revenue.revenue_total_cny, 0) as revenue_total_cny,
        coalesce(revenue.revenue_drug_cny, 0) as revenue_drug_cny,
        coalesce(revenue.revenue_consumables_cny, 0) as revenue_consumables_cny,
        coalesce(revenue.revenue_medical_service_cny, 0) as revenue_medical_service_cny,
        coalesce(revenue.revenue_exam_lab_cny, 0) as revenue_exam_lab_cny,
        coalesce(revenue.revenue_outpatient_cny, 0) as revenue_outpatient_cny,
        coalesce(revenue.revenue_inpatient_cny, 0) as revenue_inpatient_cny
    from spine
    left join staff on staff.department_id = spine.department_id and staff.month = spine.month
    left join beds on beds.department_id = spine.department_id and beds.month = spine.month
    left join equipment on equipment.department_id = spine.department_id and equipment.month = spine.month
    left join outpatient on outpatient.department_id = spine.department_id and outpatient.month = spine.month
    left join admissions on admissions.department_id = spine.department_id and admissions.month = spine.month
    left join discharges on discharges.department_id = spine.department_id and discharges.month = spine.month
    left join patient_days on patient_days.department_id = spine.department_id and patient_days.month = spine.month
    left join surgeries on surgeries.department_id = spine.department_id and surgeries.month = spine.month
    left join revenue on revenue.department_id = spine.department_id and revenue.month = spine.month
),

ratios as (
    select
        *,
        {{ safe_ratio('discharge_patient_days', 'discharges') }} as average_length_of_stay,
        {{ safe_ratio('pre_op_wait_days_total', 'surgical_discharges') }} as average_pre_op_wait_days,
        {{ safe_ratio('patient_days', 'open_bed_days') }} as bed_occupancy,
        {{ safe_ratio('revenue_drug_cny', 'revenue_total_cny') }} as drug_ratio,
        {{ safe_ratio('revenue_consumables_cny', 'revenue_total_cny') }} as consumables_ratio,
        {{ safe_ratio('revenue_medical_service_cny', 'revenue_total_cny') }} as medical_service_share,
        round(revenue_outpatient_cny / nullif(outpatient_visits, 0), 2) as cost_per_outpatient_visit_cny,
        round(revenue_inpatient_cny / nullif(discharges, 0), 2) as cost_per_discharge_cny
    from joined
)

select
    department_id || '|' || to_char(month, 'YYYY-MM') as department_month_id,
    *,
    {{ safe_ratio('cost_per_outpatient_visit_cny - lag(cost_per_outpatient_visit_cny, 12) over same_department',
                  'lag(cost_per_outpatient_visit_cny, 12) over same_department') }}
        as cost_per_outpatient_visit_yoy_growth,
    {{ safe_ratio('cost_per_discharge_cny - lag(cost_per_discharge_cny, 12) over same_department',
                  'lag(cost_per_discharge_cny, 12) over same_department') }}
        as cost_per_discharge_yoy_growth
from ratios
window same_department as (partition by department_id order by month)
