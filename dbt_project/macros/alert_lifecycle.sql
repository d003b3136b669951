{#- The alert lifecycle 预警生命周期, one place for every alert table (vendor_risk_warnings,
    service_quality_alerts, drg_anomaly_alerts): one row per alert identity (`id_column`, an md5 of
    rule, subject and period), kept across nights by an incremental merge. first_seen_on stays,
    last_seen_on moves while tonight's data still triggers it. Status: open → acknowledged (a
    supervisor took it up in ops.warning_actions) → resolved, either closed by a supervisor
    (closed_by_supervisor) or because its condition no longer holds (condition_cleared, e.g. after a
    corrected report). Never deleted, never duplicated.
    `triggered` is the relation of tonight's triggered alerts; `carried_columns` are kept from the
    published row when tonight's data no longer triggers the alert. A column added to a model later
    is taken from tonight's evaluation until the table has it (on_schema_change appends it), so an
    upgrade never breaks the nightly run. -#}
{% macro alert_lifecycle(triggered, id_column, carried_columns) -%}
{%- set previous_columns = [] -%}
{%- if is_incremental() and this is string -%}  {#- a unit test's fixture stands in for the table -#}
    {%- set previous_columns = carried_columns + ['first_seen_on', 'last_seen_on', 'resolved_on'] -%}
{%- elif is_incremental() -%}
    {%- set previous_columns = adapter.get_columns_in_relation(this) | map(attribute='name') | list -%}
{%- endif %}
with lifecycle_triggered as (
    select * from {{ triggered }}
),

lifecycle_actions as (
    select * from {{ ref('stg_ops__warning_actions') }}
),

{% if is_incremental() %}
lifecycle_previous as (
    select * from {{ this }}
),
{% endif %}

lifecycle_merged as (
    select
        coalesce(lifecycle_triggered.{{ id_column }}{% if is_incremental() %}, lifecycle_previous.{{ id_column }}{% endif %}) as {{ id_column }},
        lifecycle_triggered.{{ id_column }} is not null as is_triggered,
        {%- for column in carried_columns %}
        {% if column in previous_columns %}coalesce(lifecycle_triggered.{{ column }}, lifecycle_previous.{{ column }}){% else %}lifecycle_triggered.{{ column }}{% endif %} as {{ column }},
        {%- endfor %}
        {% if is_incremental() %}
        coalesce(lifecycle_previous.first_seen_on, {{ business_date() }}) as first_seen_on,
        case when lifecycle_triggered.{{ id_column }} is not null then {{ business_date() }}
             else lifecycle_previous.last_seen_on end as last_seen_on,
        {% if 'resolved_on' in previous_columns %}lifecycle_previous.resolved_on{% else %}null::date{% endif %} as previous_resolved_on
        {% else %}
        {{ business_date() }} as first_seen_on,
        {{ business_date() }} as last_seen_on,
        null::date as previous_resolved_on
        {% endif %}
    from lifecycle_triggered
    {% if is_incremental() %}
    full outer join lifecycle_previous on lifecycle_previous.{{ id_column }} = lifecycle_triggered.{{ id_column }}
    {% endif %}
)

select
    lifecycle_merged.{{ id_column }},
    {%- for column in carried_columns %}
    lifecycle_merged.{{ column }},
    {%- endfor %}
    lifecycle_merged.first_seen_on,
    lifecycle_merged.last_seen_on,
    case
        when lifecycle_actions.action = 'resolve' or not lifecycle_merged.is_triggered then 'resolved'
        when lifecycle_actions.action = 'acknowledge' then 'acknowledged'
        else 'open'
    end as status,
    case
        when lifecycle_actions.action = 'resolve' then 'closed_by_supervisor'
        when not lifecycle_merged.is_triggered then 'condition_cleared'
    end as resolution,
    case
        when lifecycle_actions.action = 'resolve' then lifecycle_actions.acted_at::date
        when not lifecycle_merged.is_triggered then coalesce(lifecycle_merged.previous_resolved_on, {{ business_date() }})
    end as resolved_on,
    lifecycle_actions.actor as last_action_by,
    lifecycle_actions.acted_at as last_action_at,
    lifecycle_actions.note as last_action_note
from lifecycle_merged
left join lifecycle_actions on lifecycle_actions.warning_id = lifecycle_merged.{{ id_column }}
{%- endmacro %}
