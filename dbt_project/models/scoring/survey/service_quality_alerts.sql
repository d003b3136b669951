{{ config(
    materialized='incremental',
    unique_key='alert_id',
    incremental_strategy='merge',
    on_schema_change='append_new_columns'
) }}
-- Service quality alerts 服务质量预警 — satisfaction drop 满意度下降, complaint spike 投诉激增 and channel
-- downgrade 渠道降级 (rules in int_service__alerts_triggered, thresholds in dbt vars) — one row per
-- alert identity (type, subject, period), with the lifecycle of macro alert_lifecycle (first/last
-- seen, open → acknowledged → resolved, condition cleared, supervisor actions).
{{ alert_lifecycle(ref('int_service__alerts_triggered'), 'alert_id',
                   ['alert_type', 'subject_type', 'subject_id', 'hospital_id', 'period_start', 'period_label',
                    'indicator', 'observed_value', 'baseline_value', 'threshold', 'evidence']) }}
