-- The visit that followed each referral 转诊后就诊: one row per referral with the referred patient's first
-- HIS encounter (outpatient visit or inpatient admission) at or after referred_at, matched by the
-- pseudonymized national ID (referral patient_national_id_pseudo = his__patients.national_id_pseudo;
-- both sources are keyed with the same pseudonym key at landing). A referral converts when that
-- encounter comes before referred_at + var referral_visit_window_days. The window is closed when it
-- ended by the end of the business date: an open window that has not converted yet may still convert,
-- so conversion rates should count converted referrals plus non-converted ones with a closed window.
-- Matching is defined here once, so every mart uses the same rule. The lineage columns are the referral
-- row's (its landing file and batch), so a failing test on this model holds the referral batch.
{{ config(materialized='table') }}

with referrals as (
    select * from {{ ref('stg_referral__referrals') }}
),

his_patients as (
    {{ latest_version(source('his', 'patients'), ['patient_id'], tiebreak='updated_at desc') }}
),

patient_keys as (
    -- one HIS patient per person (the lowest id if the master patient index holds a duplicate)
    select
        national_id_pseudo,
        min(patient_id) as patient_id
    from his_patients
    where national_id_pseudo is not null
    group by national_id_pseudo
),

outpatient_visits as (
    select * from {{ ref('stg_his__outpatient_visits') }}
),

inpatient_stays as (
    select * from {{ ref('stg_his__inpatient_stays') }}
),

encounters as (
    select
        patient_id,
        visit_at as encounter_at,
        'outpatient' as encounter_kind,
        visit_id as encounter_id,
        department_id
    from outpatient_visits
    union all
    select
        patient_id,
        admitted_at as encounter_at,
        'inpatient' as encounter_kind,
        stay_id as encounter_id,
        department_id
    from inpatient_stays
),

first_encounter as (
    select distinct on (r.referral_id)
        r.referral_id,
        e.encounter_at,
        e.encounter_kind,
        e.encounter_id,
        e.department_id
    from referrals as r
    inner join patient_keys as k on r.patient_national_id_pseudo = k.national_id_pseudo
    inner join encounters as e on k.patient_id = e.patient_id and r.referred_at <= e.encounter_at
    order by r.referral_id, e.encounter_at, e.encounter_id
)

select
    r.referral_id,
    r.channel_id,
    r.referred_at,
    r.referred_quarter,
    k.patient_id as his_patient_id,
    k.patient_id is not null as is_known_to_his,
    f.encounter_at as first_visit_at,
    f.encounter_kind as first_visit_kind,
    f.encounter_id as first_visit_id,
    f.department_id as first_visit_department_id,
    round((extract(epoch from f.encounter_at - r.referred_at) / 86400)::numeric, 2) as days_to_first_visit,
    coalesce(
        f.encounter_at < r.referred_at + make_interval(days => {{ var('referral_visit_window_days') }}), false
    ) as is_converted,
    r.referred_at + make_interval(days => {{ var('referral_visit_window_days') }})
    <= ({{ business_date() }} + 1)::timestamp as is_window_closed,
    {{ var('referral_visit_window_days') }} as window_days,
    r.landed_batch_date,
    r.source_file
from referrals as r
left join patient_keys as k on r.patient_national_id_pseudo = k.national_id_pseudo
left join first_encounter as f on r.referral_id = f.referral_id
