-- DRG disease-group economics 医保病种 (DRG) 分析: one row per DRG group per department per discharge
-- month, for settled cases that join a HIS stay. CMI contribution = Σ RW; profit or loss 盈亏 =
-- (insurer payment + patient copay) − case cost.
with cases as (
    select * from {{ ref('int_insurance__cases') }}
    where is_matched
)

select
    department_id || '|' || drg_code || '|' || to_char(discharge_month, 'YYYY-MM') as drg_group_month_id,
    department_id,
    hospital_id,
    drg_code,
    max(drg_name) as drg_name,
    discharge_month as month,
    count(*) as cases,
    sum(relative_weight) as rw_total,
    avg(relative_weight)::numeric as average_rw,
    avg(los_days)::numeric as average_length_of_stay,
    avg(case_cost_cny)::numeric as cost_per_case_cny,
    sum(case_cost_cny) as case_cost_cny,
    sum(los_days) as los_days_total,
    {{ safe_ratio('sum(drug_cny)', 'sum(drug_cny + consumables_cny + medical_service_cny + exam_lab_cny)') }}
        as drug_share,
    {{ safe_ratio('sum(consumables_cny)', 'sum(drug_cny + consumables_cny + medical_service_cny + exam_lab_cny)') }}
        as consumables_share,
    {{ safe_ratio('sum(medical_service_cny)', 'sum(drug_cny + consumables_cny + medical_service_cny + exam_lab_cny)') }}
        as medical_service_share,
    sum(insurer_payment_cny) as insurer_payment_cny,
    sum(patient_copay_cny) as patient_copay_cny,
    sum(drg_revenue_cny) as drg_revenue_cny,
    sum(profit_cny) as profit_cny
from cases
group by department_id, hospital_id, drg_code, discharge_month
