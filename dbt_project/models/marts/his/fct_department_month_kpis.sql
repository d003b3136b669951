-- Department KPIs 科室运营指标 in the five dimensions of the operations-analysis system, one row per
-- department per month, with month-on-month 环比 and year-on-year 同比 changes and the rank among
-- departments 科室排名 (对标) where a direction is meaningful:
--   medical quality 医疗质量      complication rate, 31-day unplanned readmission rate, mortality
--   discipline 学科建设            senior-title share (research projects: not in the HIS yet)
--   satisfaction 患者满意度        survey satisfaction rate with its sample size and rank (rank only when
--                                  the month meets var survey_min_sample_for_ranking; fct_satisfaction_month)
--                                  and complaints per 10,000 visits (fct_complaints_month)
--   efficiency 运营效率            ALOS, bed occupancy, CMI, surgeries, level-4 and minimally invasive shares
--   economics 经济管理             drug and consumables ratios, medical-service share, cost per visit
--                                  and per discharge with year-on-year growth
with ledger as (
    select * from {{ ref('fct_department_month_ledger') }}
),

outcomes as (
    select
        department_id,
        date_trunc('month', discharged_at)::date as month,
        count(*) filter (where has_complication) as discharges_with_complication,
        count(*) filter (where is_unplanned_readmission) as unplanned_readmissions_31d,
        count(*) filter (where is_death) as deaths,
        count(*) filter (where readmission_window_ends_on <= {{ business_date() }}) as discharges_readmission_final
    from {{ ref('int_his__stays_enriched') }}
    where discharged_at is not null
    group by 1, 2
),

case_mix as (
    -- CMI 病例组合指数 = Σ RW of the month's settled discharges / their number
    select
        department_id,
        discharge_month as month,
        count(*) as settled_cases,
        sum(relative_weight) as rw_total
    from {{ ref('int_insurance__cases') }}
    where is_matched
    group by 1, 2
),

satisfaction as (
    select * from {{ ref('fct_satisfaction_month') }}
),

complaints as (
    select * from {{ ref('fct_complaints_month') }}
),

history as (
    -- the first month of the HIS history is incomplete (stays admitted before it began are missing)
    select min(month) as first_month from ledger
),

kpis as (
    select
        ledger.department_month_id,
        ledger.department_id,
        ledger.hospital_id,
        ledger.month,
        ledger.is_closed_month,
        -- 完整月: closed and not the first month of history; only complete months are ranked, trended
        -- and compared
        ledger.is_closed_month and ledger.month > history.first_month as is_complete_month,
        ledger.discharges,
        coalesce(outcomes.discharges_with_complication, 0) as discharges_with_complication,
        coalesce(outcomes.unplanned_readmissions_31d, 0) as unplanned_readmissions_31d,
        coalesce(outcomes.deaths, 0) as deaths,
        {{ safe_ratio('coalesce(outcomes.discharges_with_complication, 0)', 'ledger.discharges') }}
            as complication_rate,
        {{ safe_ratio('coalesce(outcomes.unplanned_readmissions_31d, 0)', 'ledger.discharges') }}
            as unplanned_readmission_rate_31d,
        -- 31-day readmissions are provisional 待定 until the window of every discharge of the month has
        -- elapsed: coverage = discharges whose window has ended by the business date / discharges
        {{ safe_ratio('coalesce(outcomes.discharges_readmission_final, 0)', 'ledger.discharges') }}
            as readmission_window_coverage,
        coalesce(outcomes.discharges_readmission_final, 0) < ledger.discharges as is_readmission_provisional,
        {{ safe_ratio('coalesce(outcomes.deaths, 0)', 'ledger.discharges') }} as mortality_rate,
        ledger.staff_total,
        ledger.senior_title_staff,
        {{ safe_ratio('ledger.senior_title_staff', 'ledger.staff_total') }} as senior_title_share,
        satisfaction.satisfaction_rate,
        satisfaction.questionnaires as satisfaction_questionnaires,
        coalesce(satisfaction.meets_min_sample, false) as satisfaction_meets_min_sample,
        satisfaction.satisfaction_rank,
        complaints.complaints_per_10k_visits,
        ledger.average_length_of_stay,
        ledger.bed_occupancy,
        coalesce(case_mix.settled_cases, 0) as settled_cases,
        {{ safe_ratio('case_mix.rw_total', 'case_mix.settled_cases') }} as case_mix_index,
        -- CMI is provisional while the month's discharges may still settle (var cmi_settlement_days
        -- after month end); coverage = settled cases / discharges (self-paying stays never settle)
        {{ safe_ratio('coalesce(case_mix.settled_cases, 0)', 'ledger.discharges') }} as cmi_settled_coverage,
        {{ business_date() }} < ledger.month_end + {{ var('cmi_settlement_days') }} as is_cmi_provisional,
        ledger.surgeries,
        {{ safe_ratio('ledger.surgeries_grade_4', 'ledger.surgeries') }} as level4_surgery_share,
        {{ safe_ratio('ledger.minimally_invasive_surgeries', 'ledger.surgeries') }} as minimally_invasive_share,
        {{ safe_ratio('ledger.surgical_discharges', 'ledger.discharges') }} as surgical_discharge_share,
        ledger.drug_ratio,
        ledger.consumables_ratio,
        ledger.medical_service_share,
        ledger.cost_per_outpatient_visit_cny,
        ledger.cost_per_discharge_cny,
        ledger.cost_per_outpatient_visit_yoy_growth,
        ledger.cost_per_discharge_yoy_growth
    from ledger
    left join outcomes on ledger.department_id = outcomes.department_id and ledger.month = outcomes.month
    left join case_mix on ledger.department_id = case_mix.department_id and ledger.month = case_mix.month
    left join satisfaction on ledger.department_id = satisfaction.department_id and ledger.month = satisfaction.month
    left join complaints on ledger.department_id = complaints.department_id and ledger.month = complaints.month
    cross join history
)

select
    *,
    -- month-on-month and year-on-year changes only between complete months
    {%- for metric in ['bed_occupancy', 'average_length_of_stay', 'drug_ratio', 'cost_per_discharge_cny'] %}
    case
        when is_complete_month and lag(is_complete_month) over same_department
            then {{ metric }} - lag({{ metric }}) over same_department
    end as {{ metric }}_mom_change,
    case
        when is_complete_month and lag(is_complete_month, 12) over same_department
            then {{ metric }} - lag({{ metric }}, 12) over same_department
    end as {{ metric }}_yoy_change,
    {%- endfor %}
    -- ranks among the consortium's departments with discharges in a complete month (1 = best)
    {%- for metric, order in [('bed_occupancy', 'desc'), ('average_length_of_stay', 'asc'), ('drug_ratio', 'asc'),
                              ('complication_rate', 'asc')] %}
case
    when discharges > 0 and is_complete_month
        then rank() over (
            partition by month, discharges > 0 and is_complete_month
            order by {{ metric }} {{ order }} nulls last
            )
end as {{ metric }}_rank{{ "," if not loop.last }}
{%- endfor %}
from kpis
window same_department as (partition by department_id order by month)
