-- Questionnaires of referred patients 转诊患者问卷: one row per referral and questionnaire where the
-- referred person (by national-ID pseudonym) answered an outpatient or inpatient questionnaire about
-- a visit on or after the day of the referral and within var referral_visit_window_days of it — the
-- visits that followed the referral. The pseudonym is used for the join only and not carried out.
with referrals as (
    select * from {{ ref('stg_referral__referrals') }}
),

questionnaires as (
    select * from {{ ref('stg_survey__questionnaires') }}
    where questionnaire_type in ('outpatient', 'inpatient')
)

select
    referrals.referral_id,
    referrals.channel_id,
    referrals.referred_quarter,
    date_trunc('month', referrals.referred_at)::date as referred_month,
    questionnaires.questionnaire_id,
    questionnaires.visit_date
from referrals
inner join questionnaires
    on
        referrals.patient_national_id_pseudo = questionnaires.patient_national_id_pseudo
        and referrals.referred_on <= questionnaires.visit_date
        and questionnaires.visit_date < referrals.referred_on + {{ var('referral_visit_window_days') }}
