-- Hospital ledger trend 医院工作台账趋势, one row per hospital per closed month for the last
-- var('bi_trend_months') closed months, with month-on-month 环比 and year-on-year 同比 growth of revenue,
-- discharges and outpatient visits: what leadership's dashboard plots. Figures are
-- fct_hospital_month_ledger's own; the growth rates are computed here, once.
with ledger as (
    select
        *,
        {{ bi_is_complete_month('month') }} as is_complete_for_bi
    from {{ ref('fct_hospital_month_ledger') }}
),

hospitals as (
    select * from {{ ref('dim_hospitals') }}
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
            and previous_month.is_complete_for_bi
    left join ledger as previous_year
        on
            current_month.hospital_id = previous_year.hospital_id
            and previous_year.month = (current_month.month - interval '1 year')::date
            and previous_year.is_complete_for_bi
),

closed_months as (
    select distinct month
    from ledger
    -- 完整月 only (bi_is_complete_month): neither the open month nor the first month of the HIS history
    -- is plotted or the base of a growth rate
    where is_complete_for_bi
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
