-- Vendor KPIs by closed month 服务商月度指标, one row per vendor per closed month, with the vendor's
-- name. Every figure is fct_vendor_month_kpis's own (satisfaction included): nothing is recomputed.
with kpis as (
    select * from {{ ref('fct_vendor_month_kpis') }}
    where is_closed_month
),

vendors as (
    select * from {{ ref('dim_vendors') }}
)

select
    kpis.vendor_month_id,
    kpis.vendor_id,
    vendors.vendor_name,
    kpis.service_type,
    kpis.month,
    kpis.lab_accuracy,
    kpis.report_timeliness,
    kpis.delivery_delay_rate,
    kpis.cold_chain_compliance,
    kpis.staff_turnover_rate,
    kpis.spot_check_pass_rate,
    kpis.incidents,
    kpis.complaints,
    kpis.satisfaction_rate
from kpis
left join vendors on kpis.vendor_id = vendors.vendor_id
