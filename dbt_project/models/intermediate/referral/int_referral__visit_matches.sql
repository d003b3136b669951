-- The visit that followed each referral 转诊后就诊: one row per referral with the referred patient's first
-- HIS encounter (outpatient visit or inpatient admission) at or after referred_at, matched by the
-- pseudonymized national ID (stg_referral__his_patient_keys). A referral converts when that encounter
-- comes before referred_at + var referral_visit_window_days. The window is closed when it ended by the
-- end of the business date: an open window that has not converted yet may still convert, so conversion
-- rates should count converted referrals plus non-converted ones with a closed window.
-- Matching is defined here once, so every mart uses the same rule. The lineage columns are the referral
-- row's (its landing file and batch), so a failing test on this model holds the referral batch.
--
-- Incremental by referral 按转诊增量: a night matches again only the referrals whose match can have
-- changed since the last build (whose business date is the stored max(matched_on)):
--   * a referral version landed since (new, or corrected);
--   * its window was still open at the last build (it may have converted, or closed, since);
--   * its HIS patient (stored, or by pseudonym now) had a patient record landed since;
--   * an encounter of its patient landed since at or after the referral and not after the stored first
--     visit (a later one cannot come first), or its stored first visit is an encounter landed since
--     (a correction may have moved it away).
-- matched_on says which night last matched each row; previous_referred_at is the stored referred_at
-- the row replaced, so a mart by month also rebuilds the month a correction moved a referral out of.
-- Rows of batches held or released change the whole set: the runner then rebuilds with --full-refresh
-- (hospital_ops.batches), which must give the same table.
{{ config(
    materialized='incremental',
    unique_key='referral_id',
    incremental_strategy='delete+insert',
    indexes=[
        {'columns': ['referral_id'], 'unique': True},
        {'columns': ['his_patient_id']},
        {'columns': ['matched_on']},
    ],
) }}
{%- set bookmark = incremental_bookmark('matched_on') if is_incremental() else none %}

with referrals as (
    select * from {{ ref('stg_referral__referrals') }}
),

his_patients as (
    select * from {{ ref('stg_referral__his_patient_keys') }}
),

outpatient_visits as not materialized (
    -- inlined where it is read, so each reading can use the table's indexes
    select * from {{ ref('stg_his__outpatient_visits') }}
),

inpatient_stays as not materialized (
    -- inlined where it is read, so each reading can use the table's indexes
    select * from {{ ref('stg_his__inpatient_stays') }}
),

{% if is_incremental() %}
landed_encounters as (
    select
        'outpatient' as encounter_kind,
        visit_id as encounter_id,
        patient_id,
        visit_at as encounter_at
    from outpatient_visits
    where landed_batch_date > {{ bookmark }}
    union all
    select
        'inpatient' as encounter_kind,
        stay_id as encounter_id,
        patient_id,
        admitted_at as encounter_at
    from inpatient_stays
    where landed_batch_date > {{ bookmark }}
),

changed_patients as (
    select patient_id from his_patients
    where landed_batch_date > {{ bookmark }}
),

referrals_to_match as (
    -- unions of joins (not one filter of ORed IN lists), so each part is a hash join on what landed
    select referral_id from referrals
    where landed_batch_date > {{ bookmark }}
    union
    select referral_id from {{ this }}
    where not is_window_closed
    union
    select kept.referral_id
    from {{ this }} as kept
    inner join changed_patients on kept.his_patient_id = changed_patients.patient_id
    union
    select kept.referral_id
    from {{ this }} as kept
    inner join landed_encounters
        on
            kept.first_visit_kind = landed_encounters.encounter_kind
            and kept.first_visit_id = landed_encounters.encounter_id
    union
    -- an encounter landed for the matched patient that may come first: one after the stored first visit
    -- cannot change the match
    select kept.referral_id
    from {{ this }} as kept
    inner join landed_encounters
        on
            kept.his_patient_id = landed_encounters.patient_id
            and kept.referred_at <= landed_encounters.encounter_at
            and (kept.first_visit_at is null or kept.first_visit_at >= landed_encounters.encounter_at)
    union
    select referrals.referral_id
    from referrals
    inner join his_patients on referrals.patient_national_id_pseudo = his_patients.national_id_pseudo
    inner join changed_patients on his_patients.patient_id = changed_patients.patient_id
),

matched_referrals as (
    select referrals.*
    from referrals
    inner join referrals_to_match on referrals.referral_id = referrals_to_match.referral_id
),
{% else %}
matched_referrals as (
    select * from referrals
),
{% endif %}

patient_keys as (
    -- one HIS patient per person (the lowest id if the master patient index holds a duplicate)
    select
        national_id_pseudo,
        min(patient_id) as patient_id
    from his_patients
    where
        national_id_pseudo is not null
        and national_id_pseudo in (select matched_referrals.patient_national_id_pseudo from matched_referrals)
    group by national_id_pseudo
),

encounters as (
    select
        patient_id,
        visit_at as encounter_at,
        'outpatient' as encounter_kind,
        visit_id as encounter_id,
        department_id
    from outpatient_visits
    where patient_id in (select patient_keys.patient_id from patient_keys)
    union all
    select
        patient_id,
        admitted_at as encounter_at,
        'inpatient' as encounter_kind,
        stay_id as encounter_id,
        department_id
    from inpatient_stays
    where patient_id in (select patient_keys.patient_id from patient_keys)
),

first_encounter as (
    select distinct on (r.referral_id)
        r.referral_id,
        e.encounter_at,
        e.encounter_kind,
        e.encounter_id,
        e.department_id
    from matched_referrals as r
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
    r.source_file,
    {{ business_date() }} as matched_on,
    {% if is_incremental() -%}
    kept.referred_at as previous_referred_at
    {%- else -%}
    case when false then r.referred_at end as previous_referred_at
    {%- endif %}
from matched_referrals as r
left join patient_keys as k on r.patient_national_id_pseudo = k.national_id_pseudo
left join first_encounter as f on r.referral_id = f.referral_id
{% if is_incremental() -%}
left join {{ this }} as kept on r.referral_id = kept.referral_id
{%- endif %}
