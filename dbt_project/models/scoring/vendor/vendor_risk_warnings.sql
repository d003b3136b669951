{{ config(
    materialized='incremental',
    unique_key='warning_id',
    incremental_strategy='merge',
    on_schema_change='append_new_columns'
) }}
-- Vendor risk warnings 三级预警 (blue → rectification report; yellow → partial suspension and
-- on-site inspection; red → terminate and investigate), one row per warning identity
-- (rule, vendor, period, subject), with the lifecycle of macro alert_lifecycle (first/last seen,
-- open → acknowledged → resolved, condition cleared, supervisor actions).
{{ alert_lifecycle(ref('int_vendor__warnings_triggered'), 'warning_id',
                   ['vendor_id', 'rule_id', 'colour', 'period_month', 'subject', 'metric', 'observed_value',
                    'lower_bound', 'upper_bound', 'risk_tier', 'required_action', 'description', 'evidence']) }}
