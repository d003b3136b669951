-- DIP point value 点值 per year of discharge: what one DIP point pays. DIP pays a case its group's
-- points × the year's point value, the value being the year's fund budget / the year's total points.
-- The bureau's published value (var dip_point_values_cny) is used when there is one; otherwise the
-- value the year's own settlements imply: Σ case payments (insurer + patient) / Σ points, so DIP pays
-- the same total as the cases were paid, shared out by points.
with cases as (
    select * from {{ ref('int_insurance__cases') }}
),

years as (
    select
        extract(year from discharge_month)::int as settlement_year,
        count(*) as cases,
        sum(dip_points) as points_total,
        sum(drg_revenue_cny) as case_payments_cny,
        {{ safe_ratio('sum(drg_revenue_cny)', 'sum(dip_points)') }} as estimated_point_value_cny
    from cases
    where dip_points is not null
    group by 1
),

published as (
    select
        null::int as settlement_year,
        null::numeric as point_value_cny
    {%- for year, value in var('dip_point_values_cny').items() %}
    union all
    select {{ year | int }}, {{ value | float }}::numeric
    {%- endfor %}
)

select
    years.settlement_year,
    years.cases,
    years.points_total,
    years.case_payments_cny,
    years.estimated_point_value_cny,
    published.point_value_cny as published_point_value_cny,
    coalesce(published.point_value_cny, years.estimated_point_value_cny) as point_value_cny,
    case when published.point_value_cny is null then 'estimated' else 'published' end as point_value_basis
from years
left join published on years.settlement_year = published.settlement_year
