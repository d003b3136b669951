-- The ledger reconciles 台账对账: for every month, the hospitals' totals equal the departments' sums,
-- and both equal the source totals (charges, visits, admissions, discharges, surgeries). Any row
-- returned is a month that does not — seen from both sides: a month present in the source and
-- missing from the ledger is returned too (every month of either side is compared, a missing side
-- counting as zero).
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
    select
        date_trunc('month', charged_at)::date as month,
        sum(amount_cny) as revenue
    from {{ ref('stg_his__charges') }}
    group by date_trunc('month', charged_at)::date
),

source_visits as (
    select
        date_trunc('month', visit_at)::date as month,
        count(*) as visits
    from {{ ref('stg_his__outpatient_visits') }}
    group by date_trunc('month', visit_at)::date
),

source_admissions as (
    select
        date_trunc('month', admitted_at)::date as month,
        count(*) as admissions
    from stays
    group by date_trunc('month', admitted_at)::date
),

source_discharges as (
    select
        date_trunc('month', discharged_at)::date as month,
        count(*) as discharges
    from stays
    where discharged_at is not null
    group by date_trunc('month', discharged_at)::date
),

source_surgeries as (
    select
        date_trunc('month', surgeries.performed_at)::date as month,
        count(*) as surgeries
    from surgeries
    inner join stays on surgeries.stay_id = stays.stay_id
    group by date_trunc('month', surgeries.performed_at)::date
),

months as (
    select month from ledger
    union
    select month from hospital_ledger
    union
    select month from source_charges
    union
    select month from source_visits
    union
    select month from source_admissions
    union
    select month from source_discharges
    union
    select month from source_surgeries
),

compared as (
    select
        months.month,
        coalesce(ledger.revenue, 0) as revenue,
        coalesce(ledger.visits, 0) as visits,
        coalesce(ledger.admissions, 0) as admissions,
        coalesce(ledger.discharges, 0) as discharges,
        coalesce(ledger.surgeries, 0) as surgeries,
        coalesce(hospital_ledger.revenue, 0) as hospital_revenue,
        coalesce(hospital_ledger.visits, 0) as hospital_visits,
        coalesce(hospital_ledger.admissions, 0) as hospital_admissions,
        coalesce(hospital_ledger.discharges, 0) as hospital_discharges,
        coalesce(hospital_ledger.surgeries, 0) as hospital_surgeries,
        coalesce(source_charges.revenue, 0) as source_revenue,
        coalesce(source_visits.visits, 0) as source_visits,
        coalesce(source_admissions.admissions, 0) as source_admissions,
        coalesce(source_discharges.discharges, 0) as source_discharges,
        coalesce(source_surgeries.surgeries, 0) as source_surgeries,
        ledger.month is not null as in_ledger
    from months
    left join ledger on months.month = ledger.month
    left join hospital_ledger on months.month = hospital_ledger.month
    left join source_charges on months.month = source_charges.month
    left join source_visits on months.month = source_visits.month
    left join source_admissions on months.month = source_admissions.month
    left join source_discharges on months.month = source_discharges.month
    left join source_surgeries on months.month = source_surgeries.month
)

select *
from compared
where
    (revenue, visits, admissions, discharges, surgeries)
    is distinct from (hospital_revenue, hospital_visits, hospital_admissions, hospital_discharges, hospital_surgeries)
    or (revenue, visits, admissions, discharges, surgeries)
    is distinct from (source_revenue, source_visits, source_admissions, source_discharges, source_surgeries)
