-- DIP disease-group economics 按病种分值付费 (DIP) 分析: one row per DIP group per department per discharge
-- month, for settled cases that join a HIS stay. DIP payment = Σ points × the year's point value
-- (int_insurance__dip_point_values); profit or loss 盈亏 = DIP payment − case cost. Beside it, what the
-- cases were actually paid, so a department sees which groups DIP pays less than their cost.
with cases as (
    select * from {{ ref('int_insurance__cases') }}
    where is_matched and dip_group is not null
),

point_values as (
    select * from {{ ref('int_insurance__dip_point_values') }}
),

groups as (
    select
        cases.department_id,
        cases.hospital_id,
        cases.dip_group,
        cases.discharge_month as month,
        count(*) as cases,
        sum(cases.dip_points) as points_total,
        avg(cases.los_days)::numeric as average_length_of_stay,
        sum(cases.case_cost_cny) as case_cost_cny,
        avg(cases.case_cost_cny)::numeric as cost_per_case_cny,
        sum(cases.drg_revenue_cny) as actual_payment_cny
    from cases
    group by 1, 2, 3, 4
)

select
    groups.department_id || '|' || groups.dip_group || '|' || to_char(groups.month, 'YYYY-MM') as dip_group_month_id,
    groups.*,
    point_values.point_value_cny,
    point_values.point_value_basis,
    round(groups.points_total * point_values.point_value_cny, 2) as dip_payment_cny,
    round(groups.points_total * point_values.point_value_cny, 2) - groups.case_cost_cny as profit_cny
from groups
left join point_values on point_values.settlement_year = extract(year from groups.month)::int
