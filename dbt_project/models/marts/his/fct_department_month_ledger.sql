-- Operations ledger 工作台账: one row per department per month. Every ratio sits beside its parts,
-- and the parts reconcile: departments sum to hospital totals and to the source totals (tests in
-- tests/assert_ledger_*.sql).
--
-- Incremental by month 按月增量: outpatient visits and charges are the bulk of the HIS, so a night
-- recomputes only the months it touched, and the months a year later (their year-on-year growth reads
-- the touched month); every other month's rows stay as they are. A month is touched when
--   * a visit or charge landed since the last build falls in it, or a correction moved one out of it
--     (previous_visit_at / previous_charged_at in the incremental staging tables);
--   * any of its register or inpatient figures (staff, beds, equipment, admissions, discharges,
--     patient-days, surgeries; the month being closed) differs from the stored row. Those are computed
--     for every month each night: they come from tables a hundred times smaller than the charges, and
--     comparing them catches every change without tracking each register's history;
--   * it is new (a new month, a new department).
-- `dbt build --full-refresh` rebuilds every month and must give the same table.
{%- set register_and_inpatient_columns = [
    'hospital_id', 'month_end', 'days_in_month', 'is_closed_month',
    'staff_total', 'doctors', 'nurses', 'technicians', 'admin_staff', 'senior_title_staff',
    'open_beds', 'open_bed_days', 'equipment_count', 'equipment_value_cny',
    'admissions', 'discharges', 'discharge_patient_days', 'patient_days', 'surgical_discharges',
    'pre_op_wait_days_total', 'surgeries', 'surgeries_grade_1', 'surgeries_grade_2', 'surgeries_grade_3',
    'surgeries_grade_4', 'surgeries_ungraded', 'minimally_invasive_surgeries'] %}
{{ config(
    materialized='incremental',
    unique_key='month',
    incremental_strategy='delete+insert',
    indexes=[{'columns': ['department_id', 'month'], 'unique': True}],
) }}

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
        {{ month_spine_start('(select min(first_day) from activity)') }},
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
        on
            spine.department_id = staff.department_id
            and spine.month_end >= staff.hired_on
            and (staff.left_on is null or spine.month_end < staff.left_on)
    group by 1, 2
),

beds as (
    -- 实际开放床日数: days each bed was open within the month, up to the business date in the open month
    -- (so that occupancy's open bed-days and patient-days cover the same days); 开放床位 at month end
    select
        spine.department_id,
        spine.month,
        count(
            *) filter (
            where beds.open_from <= spine.month_end
            and (beds.open_to is null or beds.open_to >= spine.month_end)
        ) as open_beds,
        sum(greatest(
            0, least(coalesce(beds.open_to, spine.month_end), spine.month_end, {{ business_date() }})
            - greatest(beds.open_from, spine.month) + 1
        )) as open_bed_days
    from spine
    inner join bed_register as beds on spine.department_id = beds.department_id
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
        on
            spine.department_id = equipment.department_id
            and spine.month_end >= equipment.acquired_on
            and (equipment.retired_on is null or spine.month_end < equipment.retired_on)
    group by 1, 2
),

admissions as (
    select
        department_id,
        date_trunc('month', admitted_at)::date as month,
        count(*) as admissions
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
        sum(greatest(
            0,
            least(coalesce(stays.discharged_at::date, {{ business_date() }} + 1), spine.month_end + 1)
            - greatest(stays.admitted_at::date, spine.month)
        )) as patient_days
    from spine
    inner join stays
        on
            spine.department_id = stays.department_id
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
        count(*) filter (where surgeries.grade is null) as surgeries_ungraded,
        count(*) filter (where surgeries.minimally_invasive) as minimally_invasive_surgeries
    from operations as surgeries
    inner join stays on surgeries.stay_id = stays.stay_id
    group by 1, 2
),

registers_and_inpatient as (
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
        coalesce(surgeries.surgeries_ungraded, 0) as surgeries_ungraded,
        coalesce(surgeries.minimally_invasive_surgeries, 0) as minimally_invasive_surgeries
    from spine
    left join staff on spine.department_id = staff.department_id and spine.month = staff.month
    left join beds on spine.department_id = beds.department_id and spine.month = beds.month
    left join equipment on spine.department_id = equipment.department_id and spine.month = equipment.month
    left join admissions on spine.department_id = admissions.department_id and spine.month = admissions.month
    left join discharges on spine.department_id = discharges.department_id and spine.month = discharges.month
    left join patient_days on spine.department_id = patient_days.department_id and spine.month = patient_days.month
    left join surgeries on spine.department_id = surgeries.department_id and spine.month = surgeries.month
),

{% if is_incremental() %}
stored as (
    select * from {{ this }}
),

last_build as (
    select coalesce(max(source_landed_through), '-infinity'::timestamptz) as landed_through from stored
),

touched_months as (
    select registers_and_inpatient.month
    from registers_and_inpatient
    left join stored
        on
            registers_and_inpatient.department_id = stored.department_id
            and registers_and_inpatient.month = stored.month
    where
        stored.department_id is null
        or (
            {% for c in register_and_inpatient_columns %}registers_and_inpatient.{{ c }}{{ ", " if not loop.last }}{% endfor %}  -- noqa: LT05
        )
        is distinct from
        (
            {% for c in register_and_inpatient_columns %}stored.{{ c }}{{ ", " if not loop.last }}{% endfor %}  -- noqa: LT05
        )
    union
    select date_trunc('month', landed_at_month.event_at)::date
    from (
        select
            charged_at as event_at,
            previous_charged_at as previous_event_at
        from charges
        where landed_at > (select last_build.landed_through from last_build)
        union all
        select
            visit_at,
            previous_visit_at
        from visits
        where landed_at > (select last_build.landed_through from last_build)
    ) as landed
    cross join lateral (values (landed.event_at), (landed.previous_event_at)) as landed_at_month (event_at)
    where landed_at_month.event_at is not null
),

months_to_build as (
    -- a touched month, and the month a year later whose year-on-year growth reads it
    select distinct spine.month
    from spine
    inner join touched_months
        on spine.month in (touched_months.month, (touched_months.month + interval '12 months')::date)
),
{% else %}
months_to_build as (
    select distinct month from spine
),
{% endif %}

outpatient as (
    select
        visits.department_id,
        months_to_build.month,
        count(*) as outpatient_visits
    from months_to_build
    inner join visits
        on
            months_to_build.month <= visits.visit_at
            and visits.visit_at < months_to_build.month + interval '1 month'
    group by 1, 2
),

revenue as (
    select
        charges.department_id,
        months_to_build.month,
        sum(charges.amount_cny) as revenue_total_cny,
        sum(charges.amount_cny) filter (where charges.category = 'drug') as revenue_drug_cny,
        sum(charges.amount_cny) filter (where charges.category = 'consumables') as revenue_consumables_cny,
        sum(charges.amount_cny) filter (where charges.category = 'medical_service') as revenue_medical_service_cny,
        sum(charges.amount_cny) filter (where charges.category = 'exam_lab') as revenue_exam_lab_cny,
        sum(charges.amount_cny) filter (where charges.visit_id is not null) as revenue_outpatient_cny,
        sum(charges.amount_cny) filter (where charges.stay_id is not null) as revenue_inpatient_cny
    from months_to_build
    inner join charges
        on
            months_to_build.month <= charges.charged_at
            and charges.charged_at < months_to_build.month + interval '1 month'
    group by 1, 2
),

joined as (
    select
        registers_and_inpatient.department_id,
        registers_and_inpatient.hospital_id,
        registers_and_inpatient.month,
        registers_and_inpatient.month_end,
        registers_and_inpatient.days_in_month,
        registers_and_inpatient.is_closed_month,
        registers_and_inpatient.staff_total,
        registers_and_inpatient.doctors,
        registers_and_inpatient.nurses,
        registers_and_inpatient.technicians,
        registers_and_inpatient.admin_staff,
        registers_and_inpatient.senior_title_staff,
        registers_and_inpatient.open_beds,
        registers_and_inpatient.open_bed_days,
        registers_and_inpatient.equipment_count,
        registers_and_inpatient.equipment_value_cny,
        coalesce(outpatient.outpatient_visits, 0) as outpatient_visits,
        registers_and_inpatient.admissions,
        registers_and_inpatient.discharges,
        registers_and_inpatient.discharge_patient_days,
        registers_and_inpatient.patient_days,
        registers_and_inpatient.surgical_discharges,
        registers_and_inpatient.pre_op_wait_days_total,
        registers_and_inpatient.surgeries,
        registers_and_inpatient.surgeries_grade_1,
        registers_and_inpatient.surgeries_grade_2,
        registers_and_inpatient.surgeries_grade_3,
        registers_and_inpatient.surgeries_grade_4,
        registers_and_inpatient.surgeries_ungraded,
        registers_and_inpatient.minimally_invasive_surgeries,
        coalesce(revenue.revenue_total_cny, 0) as revenue_total_cny,
        coalesce(revenue.revenue_drug_cny, 0) as revenue_drug_cny,
        coalesce(revenue.revenue_consumables_cny, 0) as revenue_consumables_cny,
        coalesce(revenue.revenue_medical_service_cny, 0) as revenue_medical_service_cny,
        coalesce(revenue.revenue_exam_lab_cny, 0) as revenue_exam_lab_cny,
        coalesce(revenue.revenue_outpatient_cny, 0) as revenue_outpatient_cny,
        coalesce(revenue.revenue_inpatient_cny, 0) as revenue_inpatient_cny
    from registers_and_inpatient
    inner join months_to_build on registers_and_inpatient.month = months_to_build.month
    left join outpatient
        on
            registers_and_inpatient.department_id = outpatient.department_id
            and registers_and_inpatient.month = outpatient.month
    left join revenue
        on
            registers_and_inpatient.department_id = revenue.department_id
            and registers_and_inpatient.month = revenue.month
),

ratios as (
    select
        *,
        {{ ledger_ratios() | indent(8) }}
    from joined
),

year_earlier as (
    -- the same month a year before: rebuilt tonight, or as stored
    select
        department_id,
        month,
        cost_per_outpatient_visit_cny,
        cost_per_discharge_cny
    from ratios
    {% if is_incremental() %}
    union all
    select
        department_id,
        month,
        cost_per_outpatient_visit_cny,
        cost_per_discharge_cny
    from stored
    where stored.month not in (select months_to_build.month from months_to_build)
    {% endif %}
),

landed_through as (
    -- how far the incremental staging had landed when this build ran: the next build's starting point
    select greatest((select max(landed_at) from charges), (select max(landed_at) from visits)) as source_landed_through
)

select
    ratios.department_id || '|' || to_char(ratios.month, 'YYYY-MM') as department_month_id,
    ratios.*,
    {{ yoy_growth('ratios.cost_per_outpatient_visit_cny', 'year_earlier.cost_per_outpatient_visit_cny') }}
        as cost_per_outpatient_visit_yoy_growth,
    {{ yoy_growth('ratios.cost_per_discharge_cny', 'year_earlier.cost_per_discharge_cny') }}
        as cost_per_discharge_yoy_growth,
    landed_through.source_landed_through
from ratios
cross join landed_through
left join year_earlier
    on
        ratios.department_id = year_earlier.department_id
        and year_earlier.month = (ratios.month - interval '12 months')::date
