"""Referral channels 合作渠道: the referral platform / CRM's nightly CSV exports.

A night's drop folder `<inbox>/referral/<YYYY-MM-DD>/` holds what the platform exported that day:

- `referral_channels.csv`: the channel register 渠道名录 (full export, on the first day and whenever a
  channel joins or changes): channel type, tier 等级 and the date cooperation started.
- `referrals_<YYYY-MM-DD>.csv`: the referrals 转诊 the channels sent that day, with the patient's
  national ID and phone (pseudonymized at landing), the target hospital/department and the response:
  when the hospital's service centre first contacted the patient (`first_contact_at`), or only the
  minutes it took (`response_minutes`) when the CRM exports that instead.

Files come in UTF-8 or GBK (GB18030) with blank strings for nulls, duplicated lines, unknown channel
ids and unparseable dates (quarantined with the reason by the loader).

The visits that followed a referral are not in this source: they are HIS outpatient visits and
inpatient stays of the same patient, matched in dbt by the pseudonymized national ID
(`patient_national_id_pseudo` = `his__patients.national_id_pseudo`, both keyed with the same
pseudonym key) within `referral_visit_window_days` (dbt var) after `referred_at`.
"""

from __future__ import annotations

from hospital_ops.sources.spec import Column as C
from hospital_ops.sources.spec import Entity, RowRule, Source

SOURCE_NAME = "referral"

CHANNEL_TYPES = (
    "physical_exam_centre",  # 体检中心
    "community_health_station",  # 社区卫生服务站
    "referral_institution",  # 转诊机构
    "online_health_platform",  # 互联网健康平台
)
CHANNEL_TIERS = ("A", "B", "C")  # 渠道等级: A core partner 核心, B key 重点, C general 一般
CHANNEL_REF = ("channels", "channel_id")
RESPONSE_MINUTES_MAX = 60 * 24 * 60  # a plausibility bound (60 days), not a business rule

SOURCE = Source(
    name=SOURCE_NAME,
    description="Referral platform / CRM 合作渠道: channel register and referrals sent, as nightly CSV exports",
    entities=(
        Entity(
            source=SOURCE_NAME, name="channels", file_pattern="referral_channels*.csv", load_order=0,
            description="Channel register 渠道名录: one row per cooperating channel (full export)",
            business_key=("channel_id",),
            columns=(
                C("channel_id", required=True),
                C("channel_name", required=True),
                C("channel_type", required=True, allowed=CHANNEL_TYPES),
                C("tier", required=True, allowed=CHANNEL_TIERS),
                C("cooperation_start_date", "date", required=True, dates="register"),
                C("partner_hospital_id", required=True),  # the consortium hospital the channel refers to
                C("contact_person", pii=True),
                C("contact_phone", pii=True),
            ),
        ),
        Entity(
            source=SOURCE_NAME, name="referrals", file_pattern="referrals_*.csv", load_order=1,
            description="Referrals sent 转诊记录: one row per referred patient",
            business_key=("referral_id",),
            columns=(
                C("referral_id", required=True),
                C("channel_id", required=True, references=CHANNEL_REF),
                C("referred_at", "timestamp", required=True),
                C("target_hospital_id", required=True),
                C("target_department_id"),  # blank: the channel left the department to the hospital
                C("patient_national_id", required=True, pii=True),
                C("patient_phone", pii=True),
                C("first_contact_at", "timestamp"),  # blank: not contacted yet, or only minutes exported
                C("response_minutes", "int", min=0, max=RESPONSE_MINUTES_MAX),
            ),
            row_rules=(RowRule("first_contact_at", ">=", "referred_at", "a referred patient is contacted after the referral"),),
        ),
    ),
)
