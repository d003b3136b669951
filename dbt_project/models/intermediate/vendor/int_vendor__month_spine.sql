-- One row per vendor per month, from the first month any vendor activity was delivered up to the
-- business date's month 业务月份. Months end-of-month and whether the month is closed travel along.
with registry as (
    select * from {{ ref('stg_vendor__registry') }}
),

activity as (
    select min(run_at)::date as first_day from {{ ref('stg_vendor__lab_qc_results') }}
    union all
    select min(received_at)::date from {{ ref('stg_vendor__report_turnaround') }}
    union all
    select min(promised_at)::date from {{ ref('stg_vendor__deliveries') }}
    union all
    select min(reading_at)::date from {{ ref('stg_vendor__cold_chain_readings') }}
    union all
    select min(inspected_on) from {{ ref('stg_vendor__inspections') }}
    union all
    select min(period) from {{ ref('stg_vendor__service_reports') }}
),

months as (
    select generate_series(
        {{ month_spine_start('(select min(first_day) from activity)') }},
        date_trunc('month', {{ business_date() }}),
        interval '1 month'
    )::date as month
)

select
    registry.vendor_id,
    months.month,
    (months.month + interval '1 month' - interval '1 day')::date as month_end,
    (months.month + interval '1 month')::date <= {{ business_date() }} as is_closed_month
from registry
cross join months
