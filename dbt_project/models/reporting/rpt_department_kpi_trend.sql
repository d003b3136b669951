-- Department KPI trend 科室绩效趋势, one row per department per closed month: a representative KPI of
-- each of the five dimensions (quality, discipline, satisfaction, efficiency, economics) beside the
-- median of the same hospital's departments that month (对标), with the department's and hospital's
-- names. Figures are fct_department_month_kpis's own; only the peers' median is computed here.
with kpis as (
    select * from {{ ref('fct_department_month_kpis') }}
    where {{ bi_is_complete_month('month') }}
),

departments as (
    select * from {{ ref('dim_departments') }}
),

peers as (
    select
        hospital_id,
        month,
        percentile_cont(0.5) within group (order by complication_rate) as peer_median_complication_rate,
        percentile_cont(0.5) within group (order by satisfaction_rate) as peer_median_satisfaction_rate,
        percentile_cont(0.5) within group (order by average_length_of_stay) as peer_median_average_length_of_stay,
        percentile_cont(0.5) within group (order by drug_ratio) as peer_median_drug_ratio
    from kpis
    group by hospital_id, month
)

select
    kpis.department_month_id,
    kpis.hospital_id,
    departments.hospital_name,
    kpis.department_id,
    departments.department_name,
    departments.department_label,
    kpis.month,
    kpis.discharges,
    kpis.complication_rate,
    round(peers.peer_median_complication_rate::numeric, 4) as peer_median_complication_rate,
    kpis.unplanned_readmission_rate_31d,
    kpis.mortality_rate,
    kpis.senior_title_share,
    kpis.satisfaction_rate,
    round(peers.peer_median_satisfaction_rate::numeric, 4) as peer_median_satisfaction_rate,
    kpis.complaints_per_10k_visits,
    kpis.average_length_of_stay,
    round(peers.peer_median_average_length_of_stay::numeric, 2) as peer_median_average_length_of_stay,
    kpis.bed_occupancy,
    kpis.case_mix_index,
    kpis.level4_surgery_share,
    kpis.drug_ratio,
    round(peers.peer_median_drug_ratio::numeric, 4) as peer_median_drug_ratio,
    kpis.consumables_ratio,
    kpis.cost_per_discharge_cny
from kpis
left join peers on kpis.hospital_id = peers.hospital_id and kpis.month = peers.month
left join departments on kpis.department_id = departments.department_id
