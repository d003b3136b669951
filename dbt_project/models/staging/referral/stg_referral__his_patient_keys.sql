-- The HIS patients' national-ID pseudonyms 患者身份证号假名, the key a referral is matched to the HIS by
-- (referral patient_national_id_pseudo = his__patients.national_id_pseudo; both sources are keyed with
-- the same pseudonym key at landing). One row per HIS patient_id: the current version (a patient
-- without a pseudonym is kept, so a change that removed one is seen).
-- stg_his__patients deliberately leaves the pseudonym out; only the referral matching reads it, here.
with current_version as (
    {{ latest_version(source('his', 'patients'), ['patient_id'], tiebreak='updated_at desc') }}
)

select
    patient_id,
    national_id_pseudo,
    _batch_date as landed_batch_date,
    _source_file as source_file
from current_version
