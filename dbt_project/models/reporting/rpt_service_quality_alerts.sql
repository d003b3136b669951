-- Service-quality alerts not yet resolved 服务质量预警（未解除）, with the department's or channel's
-- name and the evidence, for the patient service centre. Figures are service_quality_alerts' own.
with alerts as (
    select * from {{ ref('service_quality_alerts') }}
    where status <> 'resolved'
),

departments as (
    select * from {{ ref('dim_departments') }}
),

channels as (
    select * from {{ ref('dim_channels') }}
),

hospitals as (
    select * from {{ ref('dim_hospitals') }}
)

select
    alerts.alert_id,
    alerts.alert_type,
    alerts.subject_type,
    alerts.subject_id,
    coalesce(departments.department_name, channels.channel_name, alerts.subject_id) as subject_name,
    hospitals.hospital_name,
    alerts.period_label,
    alerts.indicator,
    alerts.observed_value,
    alerts.baseline_value,
    alerts.threshold,
    alerts.evidence,
    alerts.status,
    alerts.first_seen_on,
    alerts.last_seen_on
from alerts
left join departments
    on alerts.subject_type = 'department' and alerts.subject_id = departments.department_id
left join channels
    on alerts.subject_type = 'channel' and alerts.subject_id = channels.channel_id
left join hospitals on alerts.hospital_id = hospitals.hospital_id
