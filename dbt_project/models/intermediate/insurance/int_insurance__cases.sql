-- Settled cases joined to their HIS stays 医保病例: the department and month they belong to, and the
-- stay's cost structure from the HIS charges. Cases whose stay_id matches no HIS stay stay here with
-- is_matched = false (reported by rpt_insurance_his_join, never dropped).
with settlements as (
    select * from {{ ref('stg_insurance__settlements') }}
),

stays as (
    select * from {{ ref('int_his__stays_enriched') }}
),

stay_charges as (
    select
        stay_id,
        sum(amount_cny) filter (where category = 'drug') as drug_cny,
        sum(amount_cny) filter (where category = 'consumables') as consumables_cny,
        sum(amount_cny) filter (where category = 'medical_service') as medical_service_cny,
        sum(amount_cny) filter (where category = 'exam_lab') as exam_lab_cny
    from {{ ref('stg_his__charges') }}
    where stay_id is not null
    group by stay_id
)

select
    settlements.case_id,
    settlements.stay_id,
    stays.stay_id is not null as is_matched,
    stays.department_id,
    coalesce(stays.hospital_id, settlements.hospital_id) as hospital_id,
    date_trunc('month', settlements.discharge_date)::date as discharge_month,
    settlements.settled_on,
    settlements.insurance_type,
    settlements.drg_code,
    settlements.drg_name,
    settlements.relative_weight,
    settlements.dip_group,
    settlements.dip_points,
    settlements.los_days,
    settlements.case_cost_cny,
    settlements.insurer_payment_cny,
    settlements.patient_copay_cny,
    settlements.insurer_payment_cny + settlements.patient_copay_cny as drg_revenue_cny,
    settlements.insurer_payment_cny + settlements.patient_copay_cny - settlements.case_cost_cny as profit_cny,
    coalesce(stay_charges.drug_cny, 0) as drug_cny,
    coalesce(stay_charges.consumables_cny, 0) as consumables_cny,
    coalesce(stay_charges.medical_service_cny, 0) as medical_service_cny,
    coalesce(stay_charges.exam_lab_cny, 0) as exam_lab_cny
from settlements
left join stays on settlements.stay_id = stays.stay_id
left join stay_charges on settlements.stay_id = stay_charges.stay_id
