-- Hospital ledger trend 医院工作台账趋势, one row per hospital per closed month for the last
-- var('bi_trend_months') closed months, with month-on-month 环比 and year-on-year 同比 growth of revenue,
-- discharges and outpatient visits: what leadership's dashboard plots. Figures are
-- fct_hospital_month_ledger's own; the growth rates are computed here, once.
with ledger as (
    select
        *,
        {{ bi_is_closed_month('month') }} as is_closed_for_bi
    from {{ ref('fct_hospital_month_ledger') }}
),

hospitals as (
    select * from {{ ref('dim_hospitals') }}
),

complete_months as (
    -- 完整月: the first month of the HIS history is incomplete (fct_department_month_kpis decides it);
    -- it is neither plotted nor the base of a growth rate
    select distinct month
    from {{ ref('fct_department_month_kpis') }}
    where is_complete_month
),

with_previous as (
    select
        current_month.*,
        previous_month.revenue_total_cny as previous_month_revenue_cny,
        previous_month.discharges as previous_month_discharges,
        previous_month.outpatient_visits as previous_month_outpatient_visits,
        previous_year.revenue_total_cny as previous_year_revenue_cny,
        previous_year.discharges as previous_year_discharges
    from ledger as current_month
    left join ledger as previous_month
        on
            current_month.hospital_id = previous_month.hospital_id
            and previous_month.month = (current_month.month - interval '1 month')::date
            and previous_month.month in (select complete_months.month from complete_months)
    left join ledger as previous_year
        on
            current_month.hospital_id = previous_year.hospital_id
            and previous_year.month = (current_month.month - interval '1 year')::date
            and previous_year.month in (select complete_months.month from complete_months)
),

closed_months as (
    select distinct month
    from ledger
    where is_closed_for_bi and month in (select complete_months.month from complete_months)
    order by month desc
    limit {{ var('bi_trend_months') }}
)

select
    with_previous.hospital_month_id,
    with_previous.hospital_id,
    coalesce(hospitals.hospital_name, with_previous.hospital_name) as hospital_name,
    with_previous.month,
    with_previous.outpatient_visits,
    with_previous.discharges,
    with_previous.revenue_total_cny,
    {{ safe_ratio('with_previous.revenue_total_cny - with_previous.previous_month_revenue_cny',
                  'with_previous.previous_month_revenue_cny') }} as revenue_mom_growth,
    {{ safe_ratio('with_previous.revenue_total_cny - with_previous.previous_year_revenue_cny',
                  'with_previous.previous_year_revenue_cny') }} as revenue_yoy_growth,
    {{ safe_ratio('with_previous.discharges - with_previous.previous_month_discharges',
                  'with_previous.previous_month_discharges') }} as discharges_mom_growth,
    {{ safe_ratio('with_previous.discharges - with_previous.previous_year_discharges',
                  'with_previous.previous_year_discharges') }} as discharges_yoy_growth,
    {{ safe_ratio('with_previous.outpatient_visits - with_previous.previous_month_outpatient_visits',
                  'with_previous.previous_month_outpatient_visits') }} as outpatient_visits_mom_growth,
    with_previous.average_length_of_stay,
    with_previous.bed_occupancy,
    with_previous.drug_ratio,
    with_previous.consumables_ratio,
    with_previous.cost_per_outpatient_visit_cny,
    with_previous.cost_per_discharge_cny
from with_previous
inner join closed_months on with_previous.month = closed_months.month
left join hospitals on with_previous.hospital_id = hospitals.hospital_id
