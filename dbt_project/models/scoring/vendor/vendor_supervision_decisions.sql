-- Suspension and exit decisions 暂停与退出 as of the business date, one row per vendor and rule
-- that applies, with the evidence:
--   EXIT-ON-RED             one red warning → terminate cooperation at once and investigate
--   TWO-YELLOWS             two yellow warnings within the window → rectification for N months,
--                           exit if another yellow falls after the rectification deadline
--   SUSPEND-BELOW-STANDARD  the last N closed months all below the quality standard → suspend
--   rules of seed vendor_decision_rules (e.g. SATISFACTION-LOW → rectification report; SATISFACTION-
--                           VERY-LOW → exit after rectification): the first warning of the rule in the
--                           window decides; another one after the rectification deadline escalates
--                           (e.g. to exit)
-- This model is the one that decides: the credit rating reads it (seed vendor_decision_rating_caps).
with warnings as (
    -- a warning closed by a supervisor still counts (it happened); one whose condition cleared
    -- because the data was corrected does not
    select * from {{ ref('vendor_risk_warnings') }}
    where resolution is distinct from 'condition_cleared'
),

kpis as (
    select * from {{ ref('fct_vendor_month_kpis') }}
),

decision_rules as (
    select * from {{ ref('vendor_decision_rules') }}
),

suspension_standards as (
    select * from {{ ref('vendor_service_standards') }}
    where counts_for_suspension
),

reds as (
    select
        vendor_id,
        'EXIT-ON-RED' as rule_id,
        'exit' as decision,
        max(period_month) as period_month,
        jsonb_agg(
            jsonb_build_object('warning_id', warning_id, 'rule_id', rule_id, 'period_month', period_month)
            order by period_month
        ) as evidence
    from warnings
    where colour = 'red'
    group by vendor_id
),

yellows as (
    select
        vendor_id,
        period_month,
        warning_id,
        rule_id,
        row_number() over (partition by vendor_id order by period_month, rule_id) as yellow_number
    from warnings
    where
        colour = 'yellow'
        and period_month > date_trunc('month', {{ business_date() }})
        - interval '{{ var("two_yellows_window_months") }} months'
),

second_yellow as (
    select
        vendor_id,
        period_month,
        (period_month + interval '{{ var("rectification_months") + 1 }} months' - interval '1 day')::date
            as rectification_deadline
    from yellows
    where yellow_number = 2
),

two_yellows as (
    select
        second_yellow.vendor_id,
        'TWO-YELLOWS' as rule_id,
        case
            when count(*) filter (where yellows.period_month > second_yellow.rectification_deadline) > 0
                then 'exit'
            else 'rectification'
        end as decision,
        second_yellow.period_month,
        jsonb_build_object(
            'rectification_deadline', second_yellow.rectification_deadline,
            'yellow_warnings', jsonb_agg(jsonb_build_object(
                'warning_id', yellows.warning_id, 'rule_id', yellows.rule_id, 'period_month', yellows.period_month
            ) order by yellows.yellow_number)
        ) as evidence
    from second_yellow
    inner join yellows on second_yellow.vendor_id = yellows.vendor_id
    group by second_yellow.vendor_id, second_yellow.period_month, second_yellow.rectification_deadline
),

monthly_standard as (
    -- a closed month is below standard when any suspension-relevant KPI misses its standard; the
    -- comparison follows the seed's direction (min: at least; max: at most), so a new standard row
    -- takes effect without SQL
    select
        kpis.vendor_id,
        kpis.month,
        bool_or(case standards.direction
            when 'min' then (to_jsonb(kpis) ->> standards.metric)::numeric < standards.standard
            when 'max' then (to_jsonb(kpis) ->> standards.metric)::numeric > standards.standard
        end) as is_below_standard,
        jsonb_object_agg(standards.metric, (to_jsonb(kpis) ->> standards.metric)::numeric) as values
    from kpis
    cross join suspension_standards as standards
    where kpis.is_closed_month
    group by kpis.vendor_id, kpis.month
),

last_closed_months as (
    select
        *,
        row_number() over (partition by vendor_id order by month desc) as months_ago
    from monthly_standard
),

below_standard as (
    select
        vendor_id,
        'SUSPEND-BELOW-STANDARD' as rule_id,
        'suspend' as decision,
        max(month) as period_month,
        jsonb_build_object(
            'months', jsonb_agg(jsonb_build_object('month', month, 'values', values) order by month),
            'standards', (
                select jsonb_object_agg(suspension_standards.metric, suspension_standards.standard)
                from suspension_standards
            )
        ) as evidence
    from last_closed_months
    where months_ago <= {{ var('months_below_standard_to_suspend') }}
    group by vendor_id
    having
        count(*) = {{ var('months_below_standard_to_suspend') }}
        and bool_and(coalesce(is_below_standard, false))
),

rule_warnings as (
    select
        warnings.vendor_id,
        warnings.rule_id,
        warnings.period_month,
        warnings.warning_id,
        warnings.observed_value,
        decision_rules.decision,
        decision_rules.escalated_decision,
        min(warnings.period_month) over (partition by warnings.vendor_id, warnings.rule_id) as first_month
    from warnings
    inner join decision_rules on warnings.rule_id = decision_rules.rule_id
    where
        warnings.period_month > date_trunc('month', {{ business_date() }})
        - interval '{{ var("two_yellows_window_months") }} months'
),

rule_decisions as (
    select
        vendor_id,
        rule_id,
        case
            when
                max(escalated_decision) is not null
                and bool_or(period_month > (
                    first_month + interval '{{ var("rectification_months") + 1 }} months'
                    - interval '1 day'
                )::date)
                then max(escalated_decision)
            else max(decision)
        end as decision,
        min(first_month) as period_month,
        jsonb_build_object(
            'rectification_deadline',
            (min(first_month) + interval '{{ var("rectification_months") + 1 }} months' - interval '1 day')::date,
            'warnings', jsonb_agg(jsonb_build_object(
                'warning_id', warning_id, 'rule_id', rule_id, 'period_month', period_month,
                'observed_value', observed_value
            ) order by period_month)
        ) as evidence
    from rule_warnings
    group by vendor_id, rule_id
),

decisions as (
    select * from reds
    union all
    select * from two_yellows
    union all
    select * from below_standard
    union all
    select * from rule_decisions
)

select
    md5(vendor_id || '|' || rule_id || '|' || period_month::text) as decision_id,
    vendor_id,
    rule_id,
    decision,
    period_month,
    evidence,
    {{ business_date() }} as as_of_date
from decisions
