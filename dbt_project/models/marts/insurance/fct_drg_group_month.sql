-- DRG disease-group economics 医保病种 (DRG) 分析: one row per DRG group per department per discharge
-- month, for settled cases that join a HIS stay. CMI contribution = Σ RW; profit or loss 盈亏 =
-- (insurer payment + patient copay) − case cost.
--
-- Incremental by month 按月增量: a night rewrites only the discharge months of the cases it recomputed
-- (int_insurance__cases rows built since this table's last build, source_landed_through), and the
-- month a correction moved a case out of (previous_discharge_month); every other month stays as it is.
-- delete+insert by month rewrites every group and department of a touched month; a month left without
-- any matched case is deleted after the build (post-hook), as delete+insert only replaces the months
-- the build returns. A held batch makes the night a `--full-refresh`, which must give the same table.
{{ config(
    materialized='incremental',
    unique_key='month',
    incremental_strategy='delete+insert',
    indexes=[{'columns': ['drg_group_month_id'], 'unique': True}, {'columns': ['month']}],
    post_hook=["delete from {{ this }} where month not in (select discharge_month from
                {{ ref('int_insurance__cases') }} where is_matched and discharge_month is not null)"],
) }}

with all_cases as not materialized (
    select * from {{ ref('int_insurance__cases') }}
),

{% if builds_on_stored_rows() %}
last_build as (
    select coalesce(max(source_landed_through), '-infinity'::timestamptz) as landed_through from {{ this }}
),

touched_months as (
    select moved.month
    from all_cases
    cross join lateral (values (all_cases.discharge_month), (all_cases.previous_discharge_month)) as moved (month)
    where all_cases.source_landed_through > (select last_build.landed_through from last_build)
),

cases as (
    select * from all_cases
    where is_matched and discharge_month in (select touched_months.month from touched_months)
),
{% else %}
cases as (
    select * from all_cases
    where is_matched
),
{% endif %}

landed_through as (
    -- how far the cases had landed when this build ran: the next build's starting point
    select max(source_landed_through) as source_landed_through from all_cases
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
    sum(profit_cny) as profit_cny,
    (select landed_through.source_landed_through from landed_through) as source_landed_through
from cases
group by department_id, hospital_id, drg_code, discharge_month
