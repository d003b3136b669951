-- Vendor supervision 服务商监管总览, one row per vendor: the registry entry, the latest credit rating
-- 信用等级, the warnings not yet resolved by colour 未解除预警 (red 红, yellow 黄, blue 蓝) and the
-- suspension or exit decisions in force 暂停与退出: what the "Vendor supervision" dashboard lists.
-- Figures are the scoring models' own. Built in the scoring stage, after what it shows.
with vendors as (
    select * from {{ ref('dim_vendors') }}
),

ratings as (
    select * from {{ ref('vendor_credit_rating') }}
),

warnings as (
    select * from {{ ref('vendor_risk_warnings') }}
),

decisions as (
    select * from {{ ref('vendor_supervision_decisions') }}
),

latest_rating as (
    select distinct on (vendor_id) *
    from ratings
    order by vendor_id asc, rating_month desc
),

open_warnings as (
    select
        vendor_id,
        count(*) filter (where colour = 'red') as open_red_warnings,
        count(*) filter (where colour = 'yellow') as open_yellow_warnings,
        count(*) filter (where colour = 'blue') as open_blue_warnings,
        count(*) filter (where status = 'acknowledged') as acknowledged_warnings
    from warnings
    where status <> 'resolved'
    group by vendor_id
),

vendor_decisions as (
    select
        vendor_id,
        string_agg(
            decision || ' (' || rule_id || ', ' || to_char(period_month, 'YYYY-MM') || ')', '; '
            order by period_month, rule_id
        ) as decisions
    from decisions
    group by vendor_id
)

select
    vendors.vendor_id,
    vendors.vendor_name,
    vendors.service_type,
    vendors.risk_tier,
    vendors.hospitals_served,
    latest_rating.rating_month,
    latest_rating.credit_rating,
    latest_rating.total_score,
    latest_rating.qualification_score,
    latest_rating.service_quality_score,
    latest_rating.credit_record_score,
    latest_rating.rating_cap_reason,
    latest_rating.consequence,
    coalesce(open_warnings.open_red_warnings, 0) as open_red_warnings,
    coalesce(open_warnings.open_yellow_warnings, 0) as open_yellow_warnings,
    coalesce(open_warnings.open_blue_warnings, 0) as open_blue_warnings,
    coalesce(open_warnings.acknowledged_warnings, 0) as acknowledged_warnings,
    vendor_decisions.decisions
from vendors
left join latest_rating on vendors.vendor_id = latest_rating.vendor_id
left join open_warnings on vendors.vendor_id = open_warnings.vendor_id
left join vendor_decisions on vendors.vendor_id = vendor_decisions.vendor_id
