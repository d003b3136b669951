-- Inpatient stays with what the ledger and the quality KPIs need, computed once 住院病例宽表:
-- length of stay 住院天数 (discharge date − admission date, at least 1 for a same-day stay),
-- complications, surgery and the pre-operative wait 术前等待天数, death, and 31-day readmission
-- 31天再入院 (the next admission of the same patient on a date at most 31 calendar days after this
-- discharge's date; unplanned when
-- the front page of this discharge did not plan it).
--
-- Incremental by stay 按住院增量: a night recomputes only the stays its delta touched, and keeps every
-- other stay's row as it is. A stay is touched when, since the last build (source_landed_through),
--   * its own version landed (stg_his__inpatient_stays), or one of its diagnoses or surgeries did (a
--     surgery's previous_stay_id too: a correction can move it to another stay);
--   * its department's version landed (the hospital comes from the department; the departments are a
--     register of tens of rows, read whole);
--   * another stay of the same patient is touched, or a stay left the patient (previous_patient_id):
--     the readmission of each stay reads the patient's next admission, so all of a touched patient's
--     stays are recomputed.
-- A stay never leaves this table incrementally: staging keeps every stay, and the loader refuses a stay
-- whose department is unknown (sources/his.py references), so the join to departments never drops one.
-- A held batch makes the night a `--full-refresh`. `dbt build --full-refresh` must give the same table.
{{ config(
    materialized='incremental',
    unique_key='stay_id',
    incremental_strategy='delete+insert',
    indexes=[
        {'columns': ['stay_id'], 'unique': True},
        {'columns': ['admitted_at']},
        {'columns': ['discharged_at']},
    ],
) }}

with all_stays as not materialized (
    select * from {{ ref('stg_his__inpatient_stays') }}
),

departments as not materialized (
    select * from {{ ref('stg_his__departments') }}
),

all_diagnoses as not materialized (
    select * from {{ ref('stg_his__diagnoses') }}
),

all_surgeries as not materialized (
    select * from {{ ref('stg_his__surgeries') }}
),

{% if is_incremental() %}
last_build as (
    select coalesce(max(source_landed_through), '-infinity'::timestamptz) as landed_through from {{ this }}
),

touched_stays as (
    select stay_id from all_stays
    where landed_at > (select last_build.landed_through from last_build)
    union
    select stay_id from all_diagnoses
    where landed_at > (select last_build.landed_through from last_build)
    union
    select landed_surgeries.stay_id
    from all_surgeries as landed_surgeries
    cross join lateral (values (landed_surgeries.stay_id), (landed_surgeries.previous_stay_id)) as moved (stay_id)
    where landed_surgeries.landed_at > (select last_build.landed_through from last_build)
    union
    select all_stays.stay_id
    from all_stays
    inner join departments on all_stays.department_id = departments.department_id
    where departments.landed_at > (select last_build.landed_through from last_build)
),

touched_patients as (
    select all_stays.patient_id
    from all_stays
    inner join touched_stays on all_stays.stay_id = touched_stays.stay_id
    union
    select previous_patient_id
    from all_stays
    where landed_at > (select last_build.landed_through from last_build) and previous_patient_id is not null
),

stays as (
    -- every stay of a touched patient (which includes every touched stay)
    select all_stays.*
    from all_stays
    where all_stays.patient_id in (select touched_patients.patient_id from touched_patients)
),
{% else %}
stays as (
    select * from all_stays
),
{% endif %}

diagnoses as (
    select
        stay_id,
        bool_or(is_complication) as has_complication,
        max(icd10_code) filter (where is_primary) as primary_icd10_code
    from all_diagnoses
    where stay_id in (select stays.stay_id from stays)
    group by stay_id
),

surgeries as (
    select
        stay_id,
        count(*) as surgeries,
        min(performed_at) as first_surgery_at
    from all_surgeries
    where stay_id in (select stays.stay_id from stays)
    group by stay_id
),

next_admission as (
    select
        stay_id,
        -- the first admission strictly after this one (a second stay opened at the same instant, as a FHIR
        -- export can hold, is not a readmission)
        min(admitted_at) over (
            partition by patient_id order by admitted_at
            range between interval '1 microsecond' following and unbounded following
        ) as next_admitted_at
    from stays
),

landed_through as (
    select greatest(
        (select max(landed_at) from all_stays), (select max(landed_at) from all_diagnoses),
        (select max(landed_at) from all_surgeries), (select max(landed_at) from departments)
    ) as source_landed_through
)

select
    stays.stay_id,
    stays.patient_id,
    stays.department_id,
    departments.hospital_id,
    stays.admitted_at,
    stays.discharged_at,
    stays.discharge_disposition,
    coalesce(stays.planned_readmission, false) as planned_readmission,
    greatest(stays.discharged_at::date - stays.admitted_at::date, 1) as los_days,
    coalesce(diagnoses.has_complication, false) as has_complication,
    diagnoses.primary_icd10_code,
    coalesce(surgeries.surgeries, 0) as surgeries,
    surgeries.first_surgery_at,
    surgeries.first_surgery_at::date - stays.admitted_at::date as pre_op_wait_days,
    stays.discharge_disposition = 'death' as is_death,
    -- calendar days in the hospital's time zone 自然日: the next admission's date at most N days after
    -- the discharge date (discharged on the 1st, readmitted any time on the 1st + 31 counts)
    next_admission.next_admitted_at is not null
    and next_admission.next_admitted_at::date - stays.discharged_at::date <= {{ var("readmission_window_days") }}
        as is_readmitted_within_window,
    next_admission.next_admitted_at is not null
    and next_admission.next_admitted_at::date - stays.discharged_at::date <= {{ var("readmission_window_days") }}
    and not coalesce(stays.planned_readmission, false)
        as is_unplanned_readmission,
    -- the last day of the readmission window: until the business date reaches it, the stay's
    -- readmission outcome is provisional 待定
    stays.discharged_at::date + {{ var("readmission_window_days") }} as readmission_window_ends_on,
    -- how far the staging had landed when this build ran: the next build's starting point
    landed_through.source_landed_through
from stays
cross join landed_through
inner join departments on stays.department_id = departments.department_id
left join diagnoses on stays.stay_id = diagnoses.stay_id
left join surgeries on stays.stay_id = surgeries.stay_id
left join next_admission on stays.stay_id = next_admission.stay_id
