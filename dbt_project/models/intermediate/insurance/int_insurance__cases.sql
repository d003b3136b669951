-- Settled cases joined to their HIS stays 医保病例: the department and month they belong to, and the
-- stay's cost structure from the HIS charges. Cases whose stay_id matches no HIS stay stay here with
-- is_matched = false (reported by rpt_insurance_his_join, never dropped).
--
-- Incremental by case 按病例增量: a night recomputes only the cases its delta touched, and keeps every
-- other case as it is. A case is touched when, since the last build (source_landed_through),
--   * its settlement landed (stg_insurance__settlements);
--   * its stay was recomputed (int_his__stays_enriched rows carry when they were built): a new or
--     corrected stay, its diagnoses or surgeries, its department; a case waiting for its stay
--     (is_matched = false) joins it the night the stay arrives;
--   * a charge of its stay landed, or a correction moved a charge away from it (previous_stay_id).
-- previous_discharge_month keeps the month the case belonged to before tonight's recomputation, so the
-- DRG and DIP group months also rewrite the month a correction moved the case out of. A case never
-- leaves: staging keeps every settlement, and a held batch makes the night a `--full-refresh`.
{{ config(
    materialized='incremental',
    unique_key='case_id',
    incremental_strategy='delete+insert',
    indexes=[
        {'columns': ['case_id'], 'unique': True},
        {'columns': ['source_landed_through']},
    ],
) }}

with all_settlements as not materialized (
    select * from {{ ref('stg_insurance__settlements') }}
),

all_stays as not materialized (
    select * from {{ ref('int_his__stays_enriched') }}
),

charges as not materialized (
    select * from {{ ref('stg_his__charges') }}
),

{% if is_incremental() %}
last_build as (
    select coalesce(max(source_landed_through), '-infinity'::timestamptz) as landed_through from {{ this }}
),

touched_stays as (
    select stay_id from all_stays
    where source_landed_through > (select last_build.landed_through from last_build)
    union
    select moved.stay_id
    from charges as landed_charges
    cross join lateral (values (landed_charges.stay_id), (landed_charges.previous_stay_id)) as moved (stay_id)
    where landed_charges.landed_at > (select last_build.landed_through from last_build) and moved.stay_id is not null
),

settlements as (
    select all_settlements.*
    from all_settlements
    where
        all_settlements.landed_at > (select last_build.landed_through from last_build)
        or all_settlements.stay_id in (select touched_stays.stay_id from touched_stays)
),

stored as (
    select
        case_id,
        discharge_month
    from {{ this }}
),
{% else %}
settlements as (
    select * from all_settlements
),

stored as (
    -- a first build: no case had a month before
    select
        null::text as case_id,
        null::date as discharge_month
    where false
),
{% endif %}

stays as (
    select * from all_stays
    where stay_id in (select settlements.stay_id from settlements)
),

stay_charges as (
    select
        stay_id,
        sum(amount_cny) filter (where category = 'drug') as drug_cny,
        sum(amount_cny) filter (where category = 'consumables') as consumables_cny,
        sum(amount_cny) filter (where category = 'medical_service') as medical_service_cny,
        sum(amount_cny) filter (where category = 'exam_lab') as exam_lab_cny
    from charges
    where stay_id in (select settlements.stay_id from settlements)
    group by stay_id
),

landed_through as (
    -- how far the staging had landed when this build ran: the next build's starting point
    select greatest(
        (select max(landed_at) from all_settlements), (select max(source_landed_through) from all_stays),
        (select max(landed_at) from charges)
    ) as source_landed_through
)

select
    settlements.case_id,
    settlements.stay_id,
    stays.stay_id is not null as is_matched,
    stays.department_id,
    coalesce(stays.hospital_id, settlements.hospital_id) as hospital_id,
    date_trunc('month', settlements.discharge_date)::date as discharge_month,
    stored.discharge_month as previous_discharge_month,
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
    coalesce(stay_charges.exam_lab_cny, 0) as exam_lab_cny,
    landed_through.source_landed_through
from settlements
cross join landed_through
left join stays on settlements.stay_id = stays.stay_id
left join stay_charges on settlements.stay_id = stay_charges.stay_id
left join stored on settlements.case_id = stored.case_id
