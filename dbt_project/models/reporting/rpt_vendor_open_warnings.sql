-- Vendor warnings not yet resolved 服务商未解除预警, with the vendor's name and the evidence: what the
-- vendor supervision dashboard lists, red first. Figures are vendor_risk_warnings' own.
with warnings as (
    select * from {{ ref('vendor_risk_warnings') }}
    where status <> 'resolved'
),

vendors as (
    select * from {{ ref('dim_vendors') }}
)

select
    warnings.warning_id,
    warnings.colour,
    case warnings.colour when 'red' then 1 when 'yellow' then 2 else 3 end as colour_order,
    warnings.status,
    warnings.vendor_id,
    vendors.vendor_name,
    warnings.rule_id,
    warnings.period_month,
    warnings.subject,
    warnings.metric,
    warnings.observed_value,
    warnings.lower_bound,
    warnings.upper_bound,
    warnings.required_action,
    warnings.evidence,
    warnings.first_seen_on,
    warnings.last_seen_on
from warnings
left join vendors on warnings.vendor_id = vendors.vendor_id
