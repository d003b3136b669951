-- Suspension and exit decisions 暂停与退出决定, with the vendor's name and evidence. Figures are
-- vendor_supervision_decisions' own.
with decisions as (
    select * from {{ ref('vendor_supervision_decisions') }}
),

vendors as (
    select * from {{ ref('dim_vendors') }}
)

select
    decisions.decision_id,
    decisions.as_of_date,
    decisions.vendor_id,
    vendors.vendor_name,
    decisions.decision,
    decisions.rule_id,
    decisions.period_month,
    decisions.evidence
from decisions
left join vendors on decisions.vendor_id = vendors.vendor_id
