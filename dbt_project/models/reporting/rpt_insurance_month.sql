-- Insurance economics by month 医保病种月度盈亏, one row per closed month: the DRG groups' cases,
-- revenue, case cost and profit or loss summed over fct_drg_group_month's groups, and how many groups
-- lost money that month; beside them the DIP payment and profit of fct_dip_group_month.
with drg_groups as (
    select * from {{ ref('fct_drg_group_month') }}
    where {{ bi_is_complete_month('month') }}
),

dip_groups as (
    select * from {{ ref('fct_dip_group_month') }}
    where {{ bi_is_complete_month('month') }}
),

drg_months as (
    select
        month,
        sum(cases) as drg_cases,
        sum(drg_revenue_cny) as drg_revenue_cny,
        sum(case_cost_cny) as drg_case_cost_cny,
        sum(profit_cny) as drg_profit_cny,
        count(*) filter (where profit_cny < 0) as drg_loss_making_groups
    from drg_groups
    group by month
),

dip_months as (
    select
        month,
        sum(cases) as dip_cases,
        sum(dip_payment_cny) as dip_payment_cny,
        sum(profit_cny) as dip_profit_cny,
        count(*) filter (where profit_cny < 0) as dip_loss_making_groups
    from dip_groups
    group by month
)

select
    drg_months.month,
    drg_months.drg_cases,
    drg_months.drg_revenue_cny,
    drg_months.drg_case_cost_cny,
    drg_months.drg_profit_cny,
    drg_months.drg_loss_making_groups,
    dip_months.dip_cases,
    dip_months.dip_payment_cny,
    dip_months.dip_profit_cny,
    dip_months.dip_loss_making_groups
from drg_months
left join dip_months on drg_months.month = dip_months.month
