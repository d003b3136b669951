-- The ledger reconciles 台账对账: for every month, the hospitals' totals equal the departments' sums,
-- and both equal the source totals (charges, visits, admissions, discharges, surgeries). Any row
-- returned is a month that does not.
-- Surgeries count once their stay is known: an extract by updated_at can bring a surgery before
-- its stay's latest version (the relationships test on stg_his__surgeries warns about those).
with stays as (
    select * from {{ ref('stg_his__inpatient_stays') }}
),

surgeries as (
    select * from {{ ref('stg_his__surgeries') }}
),

ledger as (
    select
        month,
        sum(revenue_total_cny) as revenue,
        sum(outpatient_visits) as visits,
        sum(admissions) as admissions,
        sum(discharges) as discharges,
        sum(surgeries) as surgeries
    from {{ ref('fct_department_month_ledger') }}
    group by month
),

hospital_ledger as (
    select
        month,
        sum(revenue_total_cny) as revenue,
        sum(outpatient_visits) as visits,
        sum(admissions) as admissions,
        sum(discharges) as discharges,
        sum(surgeries) as surgeries
    from {{ ref('fct_hospital_month_ledger') }}
    group by month
),

source_charges as (
    select date_trunc('month', charged_at)::date as month, sum(amount_cny) as revenue
    from {{ ref('stg_his__charges') }} group by 1
),

source_visits as (
    select date_trunc('month', visit_at)::date as month, count(*) as visits
    from {{ ref('stg_his__outpatient_visits') }} group by 1
),

source_admissions as (
    select date_trunc('month', admitted_at)::date as month, count(*) as admissions
    from stays group by 1
),

source_discharges as (
    select date_trunc('month', discharged_at)::date as month, count(*) as discharges
    from stays where discharged_at is not null group by 1
),

source_surgeries as (
    select date_trunc('month', surgeries.performed_at)::date as month, count(*) as surgeries
    from surgeries
    inner join stays on stays.stay_id = surgeries.stay_id
    group by 1
)

select ledger.month, ledger.revenue, hospital_ledger.revenue as hospital_revenue,
       source_charges.revenue as source_revenue, ledger.visits, source_visits.visits as source_visits
from ledger
full join hospital_ledger using (month)
left join source_charges using (month)
left join source_visits using (month)
left join source_admissions using (month)
left join source_discharges using (month)
left join source_surgeries using (month)
where (ledger.revenue, ledger.visits, ledger.admissions, ledger.discharges, ledger.surgeries)
      is distinct from
      (hospital_ledger.revenue, hospital_ledger.visits, hospital_ledger.admissions, hospital_ledger.discharges,
       hospital_ledger.surgeries)
   or ledger.revenue <> coalesce(source_charges.revenue, 0)
   or ledger.visits <> coalesce(source_visits.visits, 0)
   or ledger.admissions <> coalesce(source_admissions.admissions, 0)
   or ledger.discharges <> coalesce(source_discharges.discharges, 0)
   or ledger.surgeries <> coalesce(source_surgeries.surgeries, 0)
