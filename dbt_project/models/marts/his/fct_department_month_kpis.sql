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
        count(*) filter (where is_death) as deaths
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

kpis as (
    select
        ledger.department_month_id,
        ledger.department_id,
        ledger.hospital_id,
        ledger.month,
        ledger.is_closed_month,
        ledger.discharges,
        coalesce(outcomes.discharges_with_complication, 0) as discharges_with_complication,
        coalesce(outcomes.unplanned_readmissions_31d, 0) as unplanned_readmissions_31d,
        coalesce(outcomes.deaths, 0) as deaths,
        {{ safe_ratio('coalesce(outcomes.discharges_with_complication, 0)', 'ledger.discharges') }} as complication_rate,
        {{ safe_ratio('coalesce(outcomes.unplanned_readmissions_31d, 0)', 'ledger.discharges') }}
            as unplanned_readmission_rate_31d,
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
        round(case_mix.rw_total / nullif(case_mix.settled_cases, 0), 4) as case_mix_index,
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
    left join outcomes on outcomes.department_id = ledger.department_id and outcomes.month = ledger.month
    left join case_mix on case_mix.department_id = ledger.department_id and case_mix.month = ledger.month
    left join satisfaction on satisfaction.department_id = ledger.department_id and satisfaction.month = ledger.month
    left join complaints on complaints.department_id = ledger.department_id and complaints.month = ledger.month
)

select
    *,
    {%- for metric in ['bed_occupancy', 'average_length_of_stay', 'drug_ratio', 'cost_per_discharge_cny'] %}
    {{ metric }} - lag({{ metric }}) over same_department as {{ metric }}_mom_change,
    {{ metric }} - lag({{ metric }}, 12) over same_department as {{ metric }}_yoy_change,
    {%- endfor %}
    -- ranks among the consortium's departments with discharges that month (1 = best)
    case when discharges > 0 then rank() over (partition by month, discharges > 0 order by bed_occupancy desc nulls last) end
        as bed_occupancy_rank,
    case when discharges > 0 then rank() over (partition by month, discharges > 0 order by average_length_of_stay asc nulls last) end
        as average_length_of_stay_rank,
    case when discharges > 0 then rank() over (partition by month, discharges > 0 order by drug_ratio asc nulls last) end
        as drug_ratio_rank,
    case when discharges > 0 then rank() over (partition by month, discharges > 0 order by complication_rate asc nulls last) end
        as complication_rate_rank
from kpis
window same_department as (partition by department_id order by month)
