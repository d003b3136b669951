{{ config(
    materialized='incremental',
    unique_key='alert_id',
    incremental_strategy='merge',
    on_schema_change='append_new_columns'
) }}
-- Service quality alerts 服务质量预警 — satisfaction drop 满意度下降, complaint spike 投诉激增 and channel
-- downgrade 渠道降级 (rules in int_service__alerts_triggered, thresholds in dbt vars) — one row per
-- alert identity (type, subject, period); the id is an md5 of that identity, so a nightly rerun
-- updates the same row: first_seen_on stays, last_seen_on moves. Lifecycle as vendor_risk_warnings:
-- open → acknowledged (ops.warning_actions) → resolved, by a supervisor or because the condition no
-- longer holds. Never deleted, never duplicated.
with triggered as (
    select * from {{ ref('int_service__alerts_triggered') }}
),

actions as (
    select * from {{ ref('stg_ops__warning_actions') }}
),

{% if is_incremental() %}
previous as (
    select * from {{ this }}
),
{% endif %}

{%- set carried_columns = ['alert_type', 'subject_type', 'subject_id', 'hospital_id', 'period_start', 'period_label',
                           'indicator', 'observed_value', 'baseline_value', 'threshold', 'evidence'] %}

merged as (
    select
        coalesce(triggered.alert_id{% if is_incremental() %}, previous.alert_id{% endif %}) as alert_id,
        triggered.alert_id is not null as is_triggered,
        {%- for column in carried_columns %}
        {% if is_incremental() %}coalesce(triggered.{{ column }}, previous.{{ column }}){% else %}triggered.{{ column }}{% endif %} as {{ column }},
        {%- endfor %}
        {% if is_incremental() %}
        coalesce(previous.first_seen_on, {{ business_date() }}) as first_seen_on,
        case when triggered.alert_id is not null then {{ business_date() }} else previous.last_seen_on end as last_seen_on,
        previous.resolved_on as previous_resolved_on
        {% else %}
        {{ business_date() }} as first_seen_on,
        {{ business_date() }} as last_seen_on,
        null::date as previous_resolved_on
        {% endif %}
    from triggered
    {% if is_incremental() %}
    full outer join previous on previous.alert_id = triggered.alert_id
    {% endif %}
)

select
    merged.alert_id,
    {%- for column in carried_columns %}
    merged.{{ column }},
    {%- endfor %}
    merged.first_seen_on,
    merged.last_seen_on,
    case
        when actions.action = 'resolve' or not merged.is_triggered then 'resolved'
        when actions.action = 'acknowledge' then 'acknowledged'
        else 'open'
    end as status,
    case
        when actions.action = 'resolve' then 'closed_by_supervisor'
        when not merged.is_triggered then 'condition_cleared'
    end as resolution,
    case
        when actions.action = 'resolve' then actions.acted_at::date
        when not merged.is_triggered then coalesce(merged.previous_resolved_on, {{ business_date() }})
    end as resolved_on,
    actions.actor as last_action_by,
    actions.acted_at as last_action_at,
    actions.note as last_action_note
from merged
left join actions on actions.warning_id = merged.alert_id
