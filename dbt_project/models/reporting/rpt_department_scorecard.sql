-- The department KPI scorecard 科室绩效看板 for the latest closed month 最近已结月份, one row per
-- department: the five dimensions' KPIs with their month-on-month 环比 and year-on-year 同比 changes
-- and ranks (fct_department_month_kpis), beside the performance score and its rank
-- (department_performance_score; null for a department with too few discharges to be scored).
-- Built in the scoring stage, after the score it shows.
with kpis as (
    select * from {{ ref('fct_department_month_kpis') }}
),

scores as (
    select * from {{ ref('department_performance_score') }}
),

departments as (
    select * from {{ ref('dim_departments') }}
),

latest_closed as (
    select max(month) as month
    from kpis
    where is_closed_month
)

select
    kpis.department_month_id,
    kpis.hospital_id,
    kpis.department_id,
    departments.hospital_name,
    departments.department_name,
    kpis.month,
    kpis.discharges,
    scores.computed_score,
    scores.final_score,
    scores.is_adjusted as is_score_adjusted,
    scores.score_rank,
    kpis.complication_rate,
    kpis.complication_rate_rank,
    kpis.unplanned_readmission_rate_31d,
    kpis.mortality_rate,
    kpis.senior_title_share,
    kpis.satisfaction_rate,
    kpis.average_length_of_stay,
    kpis.average_length_of_stay_mom_change,
    kpis.average_length_of_stay_yoy_change,
    kpis.average_length_of_stay_rank,
    kpis.bed_occupancy,
    kpis.bed_occupancy_mom_change,
    kpis.bed_occupancy_yoy_change,
    kpis.bed_occupancy_rank,
    kpis.case_mix_index,
    kpis.level4_surgery_share,
    kpis.minimally_invasive_share,
    kpis.drug_ratio,
    kpis.drug_ratio_mom_change,
    kpis.drug_ratio_yoy_change,
    kpis.drug_ratio_rank,
    kpis.consumables_ratio,
    kpis.medical_service_share,
    kpis.cost_per_discharge_cny,
    kpis.cost_per_discharge_cny_mom_change,
    kpis.cost_per_discharge_cny_yoy_change
from kpis
inner join latest_closed on kpis.month = latest_closed.month
left join scores on kpis.department_month_id = scores.department_month_id
left join departments on kpis.department_id = departments.department_id
