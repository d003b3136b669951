-- Complaints 投诉, one row per department per month of the operations ledger (months without a
-- complaint show 0, so a trailing mean sees them). A department's complaints are those about its own
-- service (no vendor_id); complaints about a third-party vendor's service are shown beside them and
-- count for the vendor. Counted in the month received 受理月份.
-- Complaints per 10,000 visits 每万人次投诉数 = complaints / (outpatient visits + admissions) × 10,000:
-- the visits are the ledger's outpatient visits 门急诊人次 plus admissions 入院人次 of the department
-- in the month, i.e. every encounter that began in the month (a complaint may be about either).
-- Time to close 办结时长 = days from received to feedback, over the month's complaints closed so far.
with ledger as (
    select * from {{ ref('fct_department_month_ledger') }}
),

complaints as (
    select * from {{ ref('stg_survey__complaints') }}
),

counted as (
    select
        department_id,
        received_month as month,
        count(*) filter (where vendor_id is null) as complaints,
        count(*) filter (where vendor_id is null and is_closed) as complaints_closed,
        count(*) filter (where vendor_id is not null) as vendor_service_complaints,
        percentile_cont(0.5) within group (order by days_to_close)
        filter (where vendor_id is null and is_closed) as median_days_to_close,
        avg(days_to_close) filter (where vendor_id is null and is_closed) as mean_days_to_close,
        avg(hours_to_handle) filter (where vendor_id is null and handled_at is not null) as mean_hours_to_handle
    from complaints
    group by 1, 2
)

select
    ledger.department_month_id,
    ledger.department_id,
    ledger.hospital_id,
    ledger.month,
    ledger.is_closed_month,
    coalesce(counted.complaints, 0) as complaints,
    coalesce(counted.complaints_closed, 0) as complaints_closed,
    coalesce(counted.complaints, 0) - coalesce(counted.complaints_closed, 0) as complaints_open,
    coalesce(counted.vendor_service_complaints, 0) as vendor_service_complaints,
    ledger.outpatient_visits + ledger.admissions as visits,
    10000 * {{ safe_ratio('coalesce(counted.complaints, 0)', 'ledger.outpatient_visits + ledger.admissions') }}
        as complaints_per_10k_visits,
    counted.median_days_to_close::numeric as median_days_to_close,
    counted.mean_days_to_close::numeric as mean_days_to_close,
    counted.mean_hours_to_handle::numeric as mean_hours_to_handle
from ledger
left join counted on ledger.department_id = counted.department_id and ledger.month = counted.month
