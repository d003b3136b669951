-- DRG group economics 医保病种盈亏 for the latest closed month 最近已结月份 (the ledger's closed months),
-- one row per DRG group per department, with the department's name and how many DRG anomaly alerts
-- 病种异常预警 on the group and department still hold for that month: what the "DRG/DIP economics" dashboard
-- lists, losses first. Figures are fct_drg_group_month's own. Built in the scoring stage, after the
-- alerts it shows.
with drg_groups as (
    select * from {{ ref('fct_drg_group_month') }}
),

ledger as (
    select * from {{ ref('fct_department_month_ledger') }}
),

alerts as (
    select * from {{ ref('drg_anomaly_alerts') }}
),

departments as (
    select * from {{ ref('dim_departments') }}
),

latest_closed as (
    select max(month) as month
    from ledger
    where is_closed_month
),

alerts_by_group as (
    -- alerts whose condition held on the last night scoring ran
    select
        department_id,
        drg_code,
        month,
        count(*) as anomaly_alerts
    from alerts
    where last_seen_on = (select max(latest.last_seen_on) from alerts as latest)
    group by department_id, drg_code, month
)

select
    drg_groups.drg_group_month_id,
    drg_groups.hospital_id,
    drg_groups.department_id,
    departments.hospital_name,
    departments.department_name,
    drg_groups.drg_code,
    drg_groups.drg_name,
    drg_groups.month,
    drg_groups.cases,
    drg_groups.rw_total,
    drg_groups.average_rw,
    drg_groups.average_length_of_stay,
    drg_groups.cost_per_case_cny,
    drg_groups.case_cost_cny,
    drg_groups.drg_revenue_cny,
    drg_groups.profit_cny,
    drg_groups.profit_cny < 0 as is_loss_making,
    coalesce(alerts_by_group.anomaly_alerts, 0) as anomaly_alerts
from drg_groups
inner join latest_closed on drg_groups.month = latest_closed.month
left join alerts_by_group
    on
        drg_groups.department_id = alerts_by_group.department_id
        and drg_groups.drg_code = alerts_by_group.drg_code
        and drg_groups.month = alerts_by_group.month
left join departments on drg_groups.department_id = departments.department_id
