-- Inpatient stays with what the ledger and the quality KPIs need, computed once 住院病例宽表:
-- length of stay 住院天数 (discharge date − admission date, at least 1 for a same-day stay),
-- complications, surgery and the pre-operative wait 术前等待天数, death, and 31-day readmission
-- 31天再入院 (the next admission of the same patient on a date at most 31 calendar days after this
-- discharge's date; unplanned when
-- the front page of this discharge did not plan it).
with stays as (
    select * from {{ ref('stg_his__inpatient_stays') }}
),

departments as (
    select * from {{ ref('stg_his__departments') }}
),

diagnoses as (
    select
        stay_id,
        bool_or(is_complication) as has_complication,
        max(icd10_code) filter (where is_primary) as primary_icd10_code
    from {{ ref('stg_his__diagnoses') }}
    group by stay_id
),

surgeries as (
    select
        stay_id,
        count(*) as surgeries,
        min(performed_at) as first_surgery_at
    from {{ ref('stg_his__surgeries') }}
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
    stays.discharged_at::date + {{ var("readmission_window_days") }} as readmission_window_ends_on
from stays
inner join departments on stays.department_id = departments.department_id
left join diagnoses on stays.stay_id = diagnoses.stay_id
left join surgeries on stays.stay_id = surgeries.stay_id
left join next_admission on stays.stay_id = next_admission.stay_id
