-- DIP disease-group economics 按病种分值付费 (DIP) 分析: one row per DIP group per department per discharge
-- month, for settled cases that join a HIS stay. DIP payment = Σ points × the year's point value
-- (int_insurance__dip_point_values); profit or loss 盈亏 = DIP payment − case cost. Beside it, what the
-- cases were actually paid, so a department sees which groups DIP pays less than their cost.
--
-- Incremental by month 按月增量, like fct_drg_group_month: a night rewrites the discharge months of the
-- cases it recomputed (int_insurance__cases rows built since this table's last build) and the months a
-- correction moved a case out of. A year's estimated point value reads every case of the year, so a
-- touched month rewrites every month of its year (a published point value, var dip_point_values_cny,
-- changes only with a `--full-refresh`). A month left without any case is deleted after the build.
{{ config(
    materialized='incremental',
    unique_key='month',
    incremental_strategy='delete+insert',
    indexes=[{'columns': ['dip_group_month_id'], 'unique': True}, {'columns': ['month']}],
    post_hook=["delete from {{ this }} where month not in (select discharge_month from
                {{ ref('int_insurance__cases') }} where is_matched and dip_group is not null
                and discharge_month is not null)"],
) }}

with all_cases as not materialized (
    select * from {{ ref('int_insurance__cases') }}
),

{% if builds_on_stored_rows() %}
last_build as (
    select coalesce(max(source_landed_through), '-infinity'::timestamptz) as landed_through from {{ this }}
),

touched_years as (
    select distinct extract(year from moved.month)::int as settlement_year
    from all_cases
    cross join lateral (values (all_cases.discharge_month), (all_cases.previous_discharge_month)) as moved (month)
    where
        all_cases.source_landed_through > (select last_build.landed_through from last_build)
        and moved.month is not null
),

cases as (
    select * from all_cases
    where
        is_matched and dip_group is not null
        and extract(year from discharge_month)::int in (select touched_years.settlement_year from touched_years)
),
{% else %}
cases as (
    select * from all_cases
    where is_matched and dip_group is not null
),
{% endif %}

landed_through as (
    -- how far the cases had landed when this build ran: the next build's starting point
    select max(source_landed_through) as source_landed_through from all_cases
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
    round(groups.points_total * point_values.point_value_cny, 2) - groups.case_cost_cny as profit_cny,
    landed_through.source_landed_through
from groups
cross join landed_through
left join point_values on point_values.settlement_year = extract(year from groups.month)::int
