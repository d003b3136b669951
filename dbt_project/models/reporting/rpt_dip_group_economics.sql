-- DIP group economics 按病种分值付费盈亏 for the latest closed month, one row per DIP group per
-- department, with the department's name, losses first in the dashboard. Figures are
-- fct_dip_group_month's own.
with dip_groups as (
    select * from {{ ref('fct_dip_group_month') }}
),

departments as (
    select * from {{ ref('dim_departments') }}
),

latest_closed as (
    select max(month) as month
    from dip_groups
    where {{ bi_is_complete_month('month') }}
)

select
    dip_groups.dip_group_month_id,
    dip_groups.hospital_id,
    departments.hospital_name,
    dip_groups.department_id,
    departments.department_name,
    dip_groups.dip_group,
    dip_groups.month,
    dip_groups.cases,
    dip_groups.points_total,
    dip_groups.average_length_of_stay,
    dip_groups.cost_per_case_cny,
    dip_groups.case_cost_cny,
    dip_groups.actual_payment_cny,
    dip_groups.dip_payment_cny,
    dip_groups.profit_cny,
    dip_groups.profit_cny < 0 as is_loss_making
from dip_groups
inner join latest_closed on dip_groups.month = latest_closed.month
left join departments on dip_groups.department_id = departments.department_id
