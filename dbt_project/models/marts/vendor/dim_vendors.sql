-- Vendors 服务商维度: the current registry entry with contract terms and SLA targets.
with registry as (
    select * from {{ ref('stg_vendor__registry') }}
),

contracts as (
    select
        vendor_id,
        count(*) as contracts,
        count(distinct hospital_id) as hospitals_served,
        min(start_date) as first_contract_start,
        max(end_date) as last_contract_end,
        max(sla_lab_accuracy_min) as sla_lab_accuracy_min,
        max(sla_report_on_time_min) as sla_report_on_time_min,
        max(sla_delivery_on_time_min) as sla_delivery_on_time_min,
        sum(annual_value_cny) as annual_value_cny
    from {{ ref('stg_vendor__contracts') }}
    group by vendor_id
)

select
    registry.vendor_id,
    registry.vendor_name,
    registry.service_type,
    registry.risk_tier,
    registry.unified_credit_code,
    registry.admitted_on,
    coalesce(registry.related_party_declared, false) as related_party_declared,
    coalesce(contracts.contracts, 0) as contracts,
    coalesce(contracts.hospitals_served, 0) as hospitals_served,
    contracts.first_contract_start,
    contracts.last_contract_end,
    contracts.sla_lab_accuracy_min,
    contracts.sla_report_on_time_min,
    contracts.sla_delivery_on_time_min,
    contracts.annual_value_cny
from registry
left join contracts on registry.vendor_id = contracts.vendor_id
