-- DRG anomaly alerts that still hold 病种异常预警（当前）: the alerts of drg_anomaly_alerts whose
-- condition held on the last night scoring ran, with the department's and hospital's names and the
-- evidence, for the insurance office.
with alerts as (
    select * from {{ ref('drg_anomaly_alerts') }}
),

departments as (
    select * from {{ ref('dim_departments') }}
)

select
    alerts.alert_id,
    departments.hospital_name,
    alerts.department_id,
    departments.department_name,
    alerts.drg_code,
    alerts.drg_name,
    alerts.month,
    alerts.metric,
    alerts.value,
    alerts.robust_z,
    alerts.evidence,
    alerts.first_seen_on,
    alerts.last_seen_on
from alerts
left join departments on alerts.department_id = departments.department_id
where alerts.last_seen_on = (select max(latest.last_seen_on) from alerts as latest)
