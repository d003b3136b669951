{{ config(materialized='view', schema='intermediate', tags=['scoring']) }}
-- Warnings that tonight's data triggers 当期触发的预警: every observation inside a rule's band
-- [lower_bound, upper_bound) for the vendor's risk tier, with the rule, thresholds and evidence.
with observations as (
    select * from {{ ref('int_vendor__rule_observations') }}
),

rules as (
    select * from {{ ref('vendor_warning_rules') }}
)

select
    md5(rules.rule_id || '|' || obs.vendor_id || '|' || obs.period_month::text || '|' || obs.subject)
        as warning_id,
    obs.vendor_id,
    rules.rule_id,
    rules.colour,
    obs.period_month,
    obs.subject,
    obs.metric,
    obs.observed_value,
    rules.lower_bound,
    rules.upper_bound,
    obs.risk_tier,
    rules.action as required_action,
    rules.description,
    obs.evidence || jsonb_build_object(
        'rule_id', rules.rule_id, 'metric', obs.metric, 'observed_value', obs.observed_value,
        'lower_bound', rules.lower_bound, 'upper_bound', rules.upper_bound,
        'risk_tier', obs.risk_tier, 'period_month', obs.period_month
    ) as evidence
from observations as obs
inner join rules
    on
        obs.metric = rules.metric
        and obs.risk_tier = rules.risk_tier
        and (rules.lower_bound is null or obs.observed_value >= rules.lower_bound)
        and (rules.upper_bound is null or obs.observed_value < rules.upper_bound)
        and (obs.is_closed_month or not rules.closed_months_only)
