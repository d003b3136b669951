{{ config(materialized='incremental', unique_key='alert_id', incremental_strategy='merge',
          on_schema_change='append_new_columns') }}
-- DRG anomaly alerts 病种费用/住院日异常预警: a department's DRG group whose cost per case or ALOS in a
-- closed month departs from its own history (rule and thresholds: int_insurance__drg_anomaly_judged).
-- The alert goes to the department, carries its evidence, and has the lifecycle of every alert
-- (macro alert_lifecycle: first/last seen, open → acknowledged → resolved, condition cleared).
with triggered as (
    select
        alert_id,
        department_id,
        drg_code,
        drg_name,
        month,
        metric,
        value,
        robust_z,
        evidence
    from {{ ref('int_insurance__drg_anomaly_judged') }}
    where is_alert
),

lifecycle as (
    {{ alert_lifecycle('triggered', 'alert_id',
                       ['department_id', 'drg_code', 'drg_name', 'month', 'metric', 'value', 'robust_z', 'evidence'])
       | indent(4) }}
)

select * from lifecycle
