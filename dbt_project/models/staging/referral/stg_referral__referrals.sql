-- Referrals sent 转诊记录: one row per referred patient
-- One row per referral_id: the current version. The patient's national ID is kept only as its pseudonym
-- (the key to his__patients.national_id_pseudo); the phone pseudonym stays in raw.
-- response_minutes: the CRM's exported minutes, else minutes from referred_at to first_contact_at.
with current_version as (
    {{ latest_version(source('referral', 'referrals'), ['referral_id']) }}
)

select
    referral_id,
    channel_id,
    referred_at,
    referred_at::date as referred_on,
    date_trunc('quarter', referred_at)::date as referred_quarter,
    target_hospital_id,
    target_department_id,
    patient_national_id_pseudo,
    first_contact_at,
    coalesce(
        response_minutes,
        round(extract(epoch from first_contact_at - referred_at) / 60)
    )::integer as response_minutes,
    case
        when response_minutes is not null then 'exported_minutes'
        when first_contact_at is not null then 'first_contact_at'
    end as response_time_basis,
    _batch_date as landed_batch_date,
    _source_file as source_file
from current_version
