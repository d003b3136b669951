"""Patient survey and service-centre platform 满意度调查/客户服务中心: what the nightly API extract lands.

The platform exposes a paged JSON API (`GET /api/v1/<entity>?updated_since=…&updated_before=…&cursor=…
&limit=…` → `{"data": [...], "next_cursor": "…" | null}`, Bearer token). `hospital_ops.extract.api`
reads every entity below incrementally by `updated_at` and writes the night's landing CSVs
`<landing>/survey/<YYYY-MM-DD>/survey_<entity>.csv`, which the ordinary file loader lands in
`raw.survey__<entity>`. A record the platform changes later (a complaint moving through its
lifecycle, a corrected questionnaire) comes again with a later `updated_at`; staging keeps the latest
version per business key.

Conventions
- `hospital_id` and `department_id` are HIS ids (`H01`, `H01-CARD`); `vendor_id` is a vendor registry
  id (`V010`) on what concerns a third-party service. They are not checked at landing (other
  sources); staging tests the joins.
- Scores are 1–5 (5 best). The platform marks an answer `satisfied` itself; its rule (score ≥ 4) is
  repeated in staging as `satisfied_by_rule` so a change of the platform's rule shows.
- Patient identifiers (national ID, phone) are `pii=True`: they land only as keyed hashes
  `<column>_pseudo`, with the same key as the HIS, so `patient_national_id_pseudo` joins
  `his__patients.national_id_pseudo`.
- Free text (`comment`, `description`, `note`) is kept but scrubbed of phone and national-ID numbers
  by the extractor before it is written to disk (`free_text=True`, see `hospital_ops.extract.scrub`).
- Timestamps are local time (Asia/Shanghai), like the HIS.
"""

from __future__ import annotations

from hospital_ops.sources.spec import Column as C
from hospital_ops.sources.spec import Entity, Source

SOURCE_NAME = "survey"
CONNECTION = "survey_api"  # Airflow connection id; env SURVEY_API_URL / SURVEY_API_TOKEN
WATERMARK_COLUMN = "updated_at"

QUESTIONNAIRE_TYPES = ("outpatient", "inpatient", "vendor_service")  # 门诊 / 住院 / 第三方服务
SURVEY_CHANNELS = ("wechat", "sms", "kiosk", "phone")  # 微信 / 短信 / 自助机 / 电话
SERVICE_STAGES = (  # 服务环节
    "registration",  # 挂号
    "consultation",  # 诊疗
    "examination",  # 检查检验
    "payment",  # 缴费
    "pharmacy",  # 取药
    "admission",  # 入院
    "nursing",  # 护理
    "discharge",  # 出院
    "third_party_service",  # 第三方服务 (导医, 陪检, 保洁 …)
)
DIMENSIONS = ("attitude", "waiting_time", "environment", "professionalism", "communication")
# 服务态度 / 等候时间 / 就医环境 / 专业水平 / 沟通解释
COMPLAINT_STATUSES = ("received", "handled", "tracked", "feedback")  # 受理 → 处理 → 跟踪 → 反馈
COMPLAINT_CATEGORIES = ("attitude", "waiting_time", "medical_quality", "billing", "environment", "third_party_service")
COMPLAINT_CHANNELS = ("hotline", "wechat", "onsite", "letter")  # 热线 / 微信 / 现场 / 信函
FEEDBACK_RESULTS = ("satisfied", "basically_satisfied", "unsatisfied")  # 满意 / 基本满意 / 不满意
FOLLOW_UP_TYPES = ("post_discharge", "outpatient", "chronic_disease")  # 出院随访 / 门诊随访 / 慢病随访
FOLLOW_UP_OUTCOMES = ("reached", "not_reached", "declined")  # 已随访 / 未联系上 / 拒访
WINDOW_SERVICES = ("registration", "payment", "pharmacy", "inquiry", "admission_discharge")
# 挂号 / 收费 / 药房 / 咨询 / 出入院
SCORE_MIN, SCORE_MAX = 1, 5

QUESTIONNAIRE_REF = ("questionnaires", "questionnaire_id")


def _entity(name: str, *, load_order: int, description: str, business_key: tuple[str, ...],
            columns: tuple[C, ...]) -> Entity:
    return Entity(source=SOURCE_NAME, name=name, file_pattern=f"survey_{name}.csv", load_order=load_order,
                  description=description, business_key=business_key,
                  columns=(*columns, C(WATERMARK_COLUMN, "timestamp", required=True, dates="register")))


def _score() -> C:
    return C("score", "int", required=True, min=SCORE_MIN, max=SCORE_MAX)


SOURCE = Source(
    name=SOURCE_NAME,
    description="Survey and service-centre platform 满意度/客服: questionnaires, answers, complaints, follow-ups, "
                "window ratings, read from its paged JSON API by updated_at",
    extract="api",
    connection=CONNECTION,
    entities=(
        _entity(
            "questionnaires", load_order=0, business_key=("questionnaire_id",),
            description="Questionnaires 满意度问卷: one per surveyed patient encounter (outpatient, inpatient, "
                        "or a service by a third-party vendor)",
            columns=(
                C("questionnaire_id", required=True),
                C("questionnaire_type", required=True, allowed=QUESTIONNAIRE_TYPES),
                C("hospital_id", required=True),
                C("department_id", required=True),
                C("vendor_id"),  # set when questionnaire_type = vendor_service
                C("patient_national_id", pii=True),
                C("patient_phone", pii=True),
                C("visit_date", "date", required=True),
                C("submitted_at", "timestamp", required=True),
                C("channel", required=True, allowed=SURVEY_CHANNELS),
                C("comment", free_text=True),
            ),
        ),
        _entity(
            "answers", load_order=1, business_key=("answer_id",),
            description="Answers 问卷答案: one score per questionnaire, service stage 服务环节 and dimension 评分维度",
            columns=(
                C("answer_id", required=True),
                C("questionnaire_id", required=True, references=QUESTIONNAIRE_REF),
                C("service_stage", required=True, allowed=SERVICE_STAGES),
                C("dimension", required=True, allowed=DIMENSIONS),
                _score(),
                C("satisfied", "bool", required=True),  # the platform's flag (its rule: score >= 4)
            ),
        ),
        _entity(
            "complaints", load_order=0, business_key=("complaint_id",),
            description="Complaints 投诉 with their lifecycle received → handled → tracked → feedback "
                        "(受理 → 处理 → 跟踪 → 反馈)",
            columns=(
                C("complaint_id", required=True),
                C("received_at", "timestamp", required=True),
                C("hospital_id", required=True),
                C("department_id", required=True),
                C("vendor_id"),  # set when the complaint is about a third-party service
                C("complainant_phone", pii=True),
                C("channel", required=True, allowed=COMPLAINT_CHANNELS),
                C("category", required=True, allowed=COMPLAINT_CATEGORIES),
                C("description", free_text=True),
                C("status", required=True, allowed=COMPLAINT_STATUSES),
                C("handled_at", "timestamp"),
                C("tracked_at", "timestamp"),
                C("feedback_at", "timestamp"),
                C("feedback_result", allowed=FEEDBACK_RESULTS),
            ),
        ),
        _entity(
            "follow_ups", load_order=0, business_key=("follow_up_id",),
            description="Follow-ups 随访 of discharged and outpatient patients by the service centre",
            columns=(
                C("follow_up_id", required=True),
                C("follow_up_type", required=True, allowed=FOLLOW_UP_TYPES),
                C("hospital_id", required=True),
                C("department_id", required=True),
                C("patient_national_id", pii=True),
                C("scheduled_on", "date", required=True, dates="term"),
                C("completed_at", "timestamp"),
                C("outcome", allowed=FOLLOW_UP_OUTCOMES),
                C("satisfied", "bool"),
                C("note", free_text=True),
            ),
        ),
        _entity(
            "window_ratings", load_order=0, business_key=("rating_id",),
            description="Window-service ratings 窗口评价: a patient's rating of a service window (pad at the counter)",
            columns=(
                C("rating_id", required=True),
                C("hospital_id", required=True),
                C("department_id", required=True),
                C("window_no", required=True),
                C("window_service", required=True, allowed=WINDOW_SERVICES),
                C("rated_at", "timestamp", required=True),
                _score(),
            ),
        ),
    ),
)
