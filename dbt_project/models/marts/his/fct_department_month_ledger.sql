-- Operations ledger 工作台账: one row per department per month. Every ratio sits beside its parts,
-- and the parts reconcile: departments sum to hospital totals and to the source totals (tests in
-- tests/assert_ledger_*.sql).
--
-- Incremental by month 按月增量: a night recomputes only the months its delta touched, and the months a
-- year later (their year-on-year growth reads the touched month). Import CTEs are `not materialized`:
-- PostgreSQL would copy a CTE read more than once whole instead of using its indexes. A month is touched:
--   * a visit, charge, inpatient stay or surgery landed since the last build (source_landed_through)
--     falls in it, or a correction moved one out of it (previous_* of the incremental staging): a stay
--     touches each month from admission to discharge (in hospital: to the business date), a surgery its
--     month and its stay's discharge month, a stay its surgeries' months (they count in its department);
--   * it is the last build's month or later: stays in hospital and open beds count days up to the
--     business date, and a month closes when the business date passes its end;
--   * a register figure (staff, beds, equipment, the department's hospital) differs from the stored row.
--     Registers are read whole and compared for every month: a row per person, bed or device (hundreds a
--     hospital, not one per event); a change reaches each month of its dates;
--   * it is new (a new month or department).
-- A `--full-refresh` rebuilds every month and must give the same table.
{%- set register_columns = [
    'hospital_id', 'month_end', 'days_in_month', 'is_closed_month',
    'staff_total', 'doctors', 'nurses', 'technicians', 'admin_staff', 'senior_title_staff',
    'open_beds', 'open_bed_days', 'equipment_count', 'equipment_value_cny'] %}
{{ config(
    materialized='incremental',
    unique_key='month',
    incremental_strategy='delete+insert',
    indexes=[{'columns': ['department_id', 'month'], 'unique': True}],
) }}

with departments as not materialized (
    select * from {{ ref('stg_his__departments') }}
),

stays as not materialized (
    select * from {{ ref('int_his__stays_enriched') }}
),

inpatient_stays as not materialized (
    select * from {{ ref('stg_his__inpatient_stays') }}
),

charges as not materialized (
    select * from {{ ref('stg_his__charges') }}
),

visits as not materialized (
    select * from {{ ref('stg_his__outpatient_visits') }}
),

staff_members as not materialized (
    select * from {{ ref('stg_his__staff') }}
),

bed_register as not materialized (
    select * from {{ ref('stg_his__beds') }}
),

equipment_register as not materialized (
    select * from {{ ref('stg_his__equipment') }}
),

operations as not materialized (
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
    -- 实际开放床日数: days each bed was open in the month, up to the business date in the open month
    -- (occupancy's open bed-days and patient-days cover the same days); 开放床位 at month end
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

registers as (
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
        coalesce(equipment.equipment_value_cny, 0) as equipment_value_cny
    from spine
    left join staff on spine.department_id = staff.department_id and spine.month = staff.month
    left join beds on spine.department_id = beds.department_id and spine.month = beds.month
    left join equipment on spine.department_id = equipment.department_id and spine.month = equipment.month
),

{% if is_incremental() %}
stored as (
    select * from {{ this }}
),

last_build as (
    select
        coalesce(max(source_landed_through), '-infinity'::timestamptz) as landed_through,
        max(month) as month
    from stored
),

landed_stays as (
    select * from inpatient_stays
    where landed_at > (select last_build.landed_through from last_build)
),

landed_surgeries as (
    select * from operations
    where landed_at > (select last_build.landed_through from last_build)
),

landed_events as (
    -- what landed at a point in time, and where a correction moved it from
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
    union all
    select
        performed_at,
        previous_performed_at
    from landed_surgeries
    union all
    -- a landed surgery's stay's discharge month (and the stay's it left)
    select
        discharged_at,
        null::timestamptz as previous_event_at
    from inpatient_stays
    where
        stay_id in (
            select landed_surgeries.stay_id from landed_surgeries
            union
            select landed_surgeries.previous_stay_id from landed_surgeries
        )
    union all
    -- a landed stay's surgeries (its department may have changed)
    select
        operations.performed_at,
        null::timestamptz as previous_event_at
    from operations
    inner join landed_stays on operations.stay_id = landed_stays.stay_id
),

landed_spans as (
    -- what landed, as spans of time: each month of a span is touched
    select
        admitted_at as span_from,
        coalesce(discharged_at, {{ business_date() }}) as span_through
    from landed_stays
    union all
    select
        previous_admitted_at,
        coalesce(previous_discharged_at, {{ business_date() }})
    from landed_stays
    where previous_admitted_at is not null
    union all
    select
        landed.event_at as span_from,
        landed.event_at as span_through
    from landed_events
    cross join lateral (values (landed_events.event_at), (landed_events.previous_event_at)) as landed (event_at)
    where landed.event_at is not null
),

touched_months as (
    select registers.month
    from registers
    left join stored
        on
            registers.department_id = stored.department_id
            and registers.month = stored.month
    where
        stored.department_id is null
        or (
            {% for c in register_columns %}registers.{{ c }}{{ ", " if not loop.last }}{% endfor %}  -- noqa: LT05
        )
        is distinct from
        (
            {% for c in register_columns %}stored.{{ c }}{{ ", " if not loop.last }}{% endfor %}  -- noqa: LT05
        )
    union
    select
        generate_series(
            date_trunc('month', landed_spans.span_from),
            date_trunc('month', landed_spans.span_through),
            interval '1 month'
        )::date
    from landed_spans
    union
    select spine.month
    from spine
    where spine.month >= (select last_build.month from last_build)
),

months_to_build as (
    -- a touched month, and the month a year later (its year-on-year growth reads it)
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

admissions as (
    select
        stays.department_id,
        months_to_build.month,
        count(*) as admissions
    from months_to_build
    inner join stays
        on
            months_to_build.month <= stays.admitted_at
            and stays.admitted_at < months_to_build.month + interval '1 month'
    group by 1, 2
),

discharges as (
    select
        stays.department_id,
        months_to_build.month,
        count(*) as discharges,
        sum(stays.los_days) as discharge_patient_days,
        count(*) filter (where stays.surgeries > 0) as surgical_discharges,
        sum(stays.pre_op_wait_days) filter (where stays.surgeries > 0) as pre_op_wait_days_total
    from months_to_build
    inner join stays
        on
            months_to_build.month <= stays.discharged_at
            and stays.discharged_at < months_to_build.month + interval '1 month'
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
    inner join months_to_build on spine.month = months_to_build.month
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
        months_to_build.month,
        count(*) as surgeries,
        count(*) filter (where surgeries.grade = 1) as surgeries_grade_1,
        count(*) filter (where surgeries.grade = 2) as surgeries_grade_2,
        count(*) filter (where surgeries.grade = 3) as surgeries_grade_3,
        count(*) filter (where surgeries.grade = 4) as surgeries_grade_4,
        count(*) filter (where surgeries.grade is null) as surgeries_ungraded,
        count(*) filter (where surgeries.minimally_invasive) as minimally_invasive_surgeries
    from months_to_build
    inner join operations as surgeries
        on
            months_to_build.month <= surgeries.performed_at
            and surgeries.performed_at < months_to_build.month + interval '1 month'
    inner join stays on surgeries.stay_id = stays.stay_id
    group by 1, 2
),

registers_and_inpatient as (
    select
        registers.*,
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
    from registers
    inner join months_to_build on registers.month = months_to_build.month
    left join admissions on registers.department_id = admissions.department_id and registers.month = admissions.month
    left join discharges on registers.department_id = discharges.department_id and registers.month = discharges.month
    left join patient_days
        on registers.department_id = patient_days.department_id and registers.month = patient_days.month
    left join surgeries on registers.department_id = surgeries.department_id and registers.month = surgeries.month
),

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
    -- the same month a year before: rebuilt tonight, or stored
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
    -- how far the staging had landed at this build: the next build's starting point
    select greatest(
        (select max(landed_at) from charges), (select max(landed_at) from visits),
        (select max(landed_at) from inpatient_stays), (select max(landed_at) from operations)
    ) as source_landed_through
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
