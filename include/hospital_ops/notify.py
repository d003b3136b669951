"""Notifications to the data team's and supervisors' channels through Apprise (the library behind
Airflow's Apprise provider): e-mail, WeCom 企业微信, DingTalk 钉钉, Feishu 飞书 and any webhook, from one
list of Apprise URLs.

Where the URLs come from: the Airflow connection `hospital_ops_alerts` (conn type `apprise`, extra
`{"config": [{"path": "<apprise url>"}, …]}`, the provider's own format); for the embedded run the
environment variable HOSPITAL_OPS_ALERT_URLS (URLs separated by spaces or commas) becomes that
connection (`airflow_env`). With neither, nothing is sent and the night says so in its log.

What is sent (messages in Chinese with the English rule id, a phone screen long):
- a failed task of a night: which task, the error, the log link (`failure_message`);
- a failed quality gate: the failed expectations (`failure_message` for task quality_gate);
- a night that finished after its publish deadline (`late_message`);
- each NEW red or yellow vendor warning, service-quality alert and DRG anomaly alert: rule,
  evidence, required action (`notify_new_alerts`), once per alert: what was sent is recorded in
  ops.notifications_sent, so a rerun of the same night, or the next nights while the alert stays
  open, send nothing again.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from hospital_ops.db import fetch_one

if TYPE_CHECKING:
    from psycopg2.extensions import cursor as PgCursor

log = logging.getLogger(__name__)

ALERTS_CONN_ID = "hospital_ops_alerts"
ALERT_URLS_ENV = "HOSPITAL_OPS_ALERT_URLS"
PUBLISH_DEADLINE_ENV = "HOSPITAL_OPS_PUBLISH_DEADLINE"
DEFAULT_PUBLISH_DEADLINE = "07:00"  # published by 07:00 hospital time, the morning after the business date
HOSPITAL_TZ = ZoneInfo("Asia/Shanghai")
MAX_BODY = 480  # characters: a phone's notification, not a report
COLOUR_NAMES = {"red": "红色", "yellow": "黄色"}

# the alert tables BI reads (published by the night), and how each row becomes a message
ALERT_KINDS = ("vendor_warning", "service_alert", "drg_alert")


class NotificationFailed(RuntimeError):
    """A channel refused a message; the ones sent before it are recorded and not sent again."""


@dataclass(frozen=True)
class Message:
    title: str
    body: str


# ------------------------------------------------------------------------------ configuration


def urls_from_text(text: str | None) -> list[str]:
    return [u for u in re.split(r"[\s,]+", text or "") if u]


def connection_json(urls: Iterable[str]) -> str:
    """The Airflow connection (JSON form, for AIRFLOW_CONN_HOSPITAL_OPS_ALERTS) holding these URLs
    in the Apprise provider's format."""
    return json.dumps({"conn_type": "apprise", "extra": {"config": [{"path": u} for u in urls]}})


def urls_from_connection_extra(extra: dict) -> list[str]:
    config = extra.get("config", [])
    config = json.loads(config) if isinstance(config, str) else config
    config = [config] if isinstance(config, dict) else config
    return [item["path"] for item in config]


def publish_deadline() -> time:
    """The time of day (hospital time) a night's marts must be published by, the morning after."""
    text = os.environ.get(PUBLISH_DEADLINE_ENV) or DEFAULT_PUBLISH_DEADLINE
    try:
        return time.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{PUBLISH_DEADLINE_ENV}={text!r} is not a time of day HH:MM") from exc


def deadline_for(business_date: date) -> datetime:
    return datetime.combine(business_date + timedelta(days=1), publish_deadline(), tzinfo=HOSPITAL_TZ)


# ----------------------------------------------------------------------------------- sending


def send(urls: list[str], message: Message, notify_type: str = "warning") -> bool:
    """Send one message to every URL through Apprise; True when every channel accepted it."""
    import apprise

    sender = apprise.Apprise()
    for url in urls:
        if not sender.add(url):
            raise ValueError(f"not an Apprise URL this installation supports: {_redact(url)}")
    return bool(sender.notify(title=message.title, body=message.body, notify_type=notify_type))


def _redact(url: str) -> str:
    return re.sub(r"//[^@/]*@", "//***@", url)


def _short(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fit(title: str, lines: list[str]) -> Message:
    body = "\n".join(line for line in lines if line)
    if len(body) > MAX_BODY:
        body = body[: MAX_BODY - 1] + "…"
    return Message(title, body)


# ---------------------------------------------------------------------------------- messages


def failure_message(*, dag_id: str, task_id: str, business_date: date | str, error: str, log_url: str | None) -> Message:
    """A failed task: which one, the error, the log link. For the quality gate: the failed expectations."""
    if task_id == "quality_gate":
        failed = [line.strip()[2:] for line in str(error).splitlines() if line.strip().startswith("- ")]
        lines = [f"业务日期 business date {business_date}: 质量门禁未通过, 今晚数据未发布 (BI 保留上次结果)",
                 "未通过的检查 failed expectations:",
                 *[f"- {_short(_compact_failure(item), 130)}" for item in failed[:4]],
                 f"… 共 {len(failed)} 项" if len(failed) > 4 else "",
                 f"日志 log: {log_url}" if log_url else ""]
        if not failed:
            lines.insert(2, _short(str(error), 200))
        return _fit(f"【质量门禁失败】{dag_id} quality_gate", lines)
    lines = [f"业务日期 business date {business_date}: 任务失败 task failed: {task_id}",
             f"错误 error: {_short(error, 220)}",
             f"日志 log: {log_url}" if log_url else ""]
    return _fit(f"【夜间任务失败】{dag_id} {task_id}", lines)


def _compact_failure(line: str) -> str:
    """A gate failure line (suite=… | table=… | expectation=… | column=… | unexpected=…) for a phone:
    table, expectation, column, unexpected rows."""
    fields = dict(part.split("=", 1) for part in line.split(" | ") if "=" in part)
    if "expectation" not in fields:
        return line
    return " ".join(filter(None, [fields.get("table"), fields["expectation"], fields.get("column"),
                                  f"({fields['unexpected']})" if fields.get("unexpected") else ""]))


def late_message(*, dag_id: str, business_date: date, finished_at: datetime, deadline: datetime) -> Message:
    late_by = finished_at - deadline
    minutes = int(late_by.total_seconds() // 60)
    return _fit(f"【夜间运行超时】{dag_id} {business_date}",
                [f"业务日期 business date {business_date} 的数据 {finished_at.astimezone(HOSPITAL_TZ):%H:%M} 才发布",
                 f"晚于发布时限 deadline {deadline:%H:%M} ({minutes} 分钟 min late, rule NIGHT_LATE)"])


def deadline_missed_body() -> str:
    """The deadline alert's message (Airflow renders the Jinja fields when the deadline passes)."""
    # the deadline's context carries the DAG and the deadline (UTC), not the run's id
    return ("业务数据未在发布时限前发布 (rule PUBLISH_DEADLINE): {{ dag_run.dag_id }} "
            "时限 deadline {{ deadline.deadline_time }}")


def _evidence(evidence: object) -> str:
    if evidence is None:
        return ""
    if isinstance(evidence, str):
        try:
            evidence = json.loads(evidence)
        except ValueError:
            return _short(str(evidence), 160)
    if isinstance(evidence, dict):
        parts = [f"{k}={v}" for k, v in evidence.items() if not isinstance(v, (list, dict))]
        return _short(", ".join(parts), 160)
    return _short(json.dumps(evidence, ensure_ascii=False, default=str), 160)


def _vendor_warning(row: dict, actions: dict | None = None) -> Message:  # its rule's action is on the row
    colour = COLOUR_NAMES.get(row["colour"], row["colour"])
    subject = "" if row["subject"] in (None, "-") else f" {row['subject']}"
    return _fit(f"【{colour}预警】{row['vendor_id']} {row['rule_id']}",
                [f"第三方服务商 vendor {row['vendor_id']}{subject}, {row['period_month']:%Y-%m}",
                 f"规则 rule {row['rule_id']}: {_short(row['description'] or '', 90)}",
                 f"观测值 observed {row['observed_value']:g}" + (f" ({row['metric']})" if row.get("metric") else ""),
                 f"证据 evidence: {_evidence(row['evidence'])}",
                 f"处置要求 action: {_short(row['required_action'] or '', 120)}"])


# the required action of each service-quality and DRG anomaly rule (and its Chinese name) lives in the
# seed alert_required_actions, beside the rules; the night builds it into reference.alert_required_actions
ACTIONS_TABLE = "reference.alert_required_actions"


@dataclass(frozen=True)
class RequiredAction:
    name_zh: str
    text: str


def required_actions(cur: PgCursor) -> dict[tuple[str, str], RequiredAction]:
    """(alert kind, rule id) → its Chinese name and required action, from the seed in the warehouse."""
    cur.execute("select to_regclass(%s)", (ACTIONS_TABLE,))
    if fetch_one(cur)[0] is None:
        return {}
    cur.execute(f"select alert_kind, rule_id, name_zh, required_action from {ACTIONS_TABLE}")
    return {(kind, rule): RequiredAction(name, text) for kind, rule, name, text in cur.fetchall()}


def _action(actions: dict[tuple[str, str], RequiredAction], kind: str, rule: str) -> RequiredAction:
    found = actions.get((kind, rule))
    if found is None:  # said in the message, never guessed: the rule's row is missing from the seed
        log.warning("no required action for %s rule %s in %s", kind, rule, ACTIONS_TABLE)
        return RequiredAction(rule, f"未配置 not configured (seed alert_required_actions, rule {rule})")
    return found


def _service_alert(row: dict, actions: dict[tuple[str, str], RequiredAction]) -> Message:
    kind = row["alert_type"]
    action = _action(actions, "service_alert", kind)
    return _fit(f"【服务质量预警】{row['subject_id']} {kind}",
                [(f"{action.name_zh} rule {kind}: {row['subject_type']} {row['subject_id']}, "
                  f"{row['period_label']}"),
                 (f"{row['indicator']}: {row['observed_value']} (基线 baseline {row['baseline_value']}, "
                  f"阈值 threshold {row['threshold']})"),
                 f"证据 evidence: {_evidence(row['evidence'])}",
                 f"处置要求 action: {_short(action.text, 120)}"])


DRG_METRIC_NAMES = {"cost_per_case_cny": "例均费用", "average_length_of_stay": "平均住院日"}
DRG_RULE = "DRG_ANOMALY"


def _drg_alert(row: dict, actions: dict[tuple[str, str], RequiredAction]) -> Message:
    metric = DRG_METRIC_NAMES.get(row["metric"], row["metric"])
    action = _action(actions, "drg_alert", DRG_RULE)
    return _fit(f"【病种异常预警】{row['department_id']} {row['drg_code']}",
                [(f"科室 department {row['department_id']}, 病组 DRG {row['drg_code']} {row['drg_name'] or ''}, "
                  f"{row['month']:%Y-%m}"),
                 f"rule {DRG_RULE}: {metric} {row['metric']} = {row['value']} (稳健Z robust z {row['robust_z']})",
                 f"证据 evidence: {_evidence(row['evidence'])}",
                 f"处置要求 action: {_short(action.text, 120)}"])


# one query per kind: the alerts that hold tonight (open, seen on this business date), the colours
# that page someone (red and yellow vendor warnings; blue ones stay on the dashboard)
_ALERT_QUERIES = {
    "vendor_warning": ("scoring", "vendor_risk_warnings", "warning_id",
                       ("select warning_id as alert_id, * from scoring.vendor_risk_warnings "
                       "where colour in ('red', 'yellow') and status <> 'resolved' and last_seen_on = %(d)s "
                       "order by colour, vendor_id, rule_id, warning_id"), _vendor_warning),
    "service_alert": ("scoring", "service_quality_alerts", "alert_id",
                      ("select * from scoring.service_quality_alerts "
                      "where status <> 'resolved' and last_seen_on = %(d)s order by alert_type, subject_id, alert_id"),
                      _service_alert),
    "drg_alert": ("scoring", "drg_anomaly_alerts", "alert_id",
                  ("select * from scoring.drg_anomaly_alerts where status <> 'resolved' and last_seen_on = %(d)s "
                  "order by department_id, drg_code, metric, alert_id"), _drg_alert),
}

@dataclass
class AlertNotifications:
    sent: list[tuple[str, str]]       # (kind, alert_id) sent tonight
    already_sent: int                 # alerts holding tonight that were sent on an earlier night or run
    failed: list[tuple[str, str]]     # refused by a channel: tried again on the next run

    def as_dict(self) -> dict:
        return {"sent": len(self.sent), "already_sent": self.already_sent, "failed": len(self.failed)}


def new_alert_messages(cur: PgCursor, business_date: date) -> tuple[list[tuple[str, str, Message]], int]:
    """(kind, alert id, message) of every alert holding tonight and never sent; and how many holding
    tonight were sent before."""
    cur.execute("select alert_kind, alert_id from ops.notifications_sent")
    sent = set(cur.fetchall())
    actions = required_actions(cur)
    new: list[tuple[str, str, Message]] = []
    already = 0
    for kind in ALERT_KINDS:
        schema, table, _, sql, render = _ALERT_QUERIES[kind]
        cur.execute("select to_regclass(%s)", (f"{schema}.{table}",))
        if fetch_one(cur)[0] is None:  # a source not configured: its alert table was never built
            continue
        cur.execute(sql, {"d": business_date})
        columns = [c.name for c in cur.description or ()]
        for values in cur.fetchall():
            row = dict(zip(columns, values, strict=True))
            if (kind, row["alert_id"]) in sent:
                already += 1
            else:
                new.append((kind, row["alert_id"], render(row, actions)))
    return new, already


def notify_new_alerts(warehouse_url: str, *, business_date: date, run_id: str, urls: list[str],
                      sender: Callable[[list[str], Message], bool] = send) -> AlertNotifications:
    """Send each new alert once and record it; raise NotificationFailed if a channel refused one
    (those are not recorded, so the next run tries them again)."""
    import psycopg2

    with closing(psycopg2.connect(warehouse_url)) as conn:
        with conn.cursor() as cur:
            new, already = new_alert_messages(cur, business_date)
        conn.commit()
        result = AlertNotifications([], already, [])
        if not urls:
            log.warning("%d new alerts not sent: no channel configured (connection %s or %s)",
                        len(new), ALERTS_CONN_ID, ALERT_URLS_ENV)
            return result
        for kind, alert_id, message in new:
            if not sender(urls, message):
                result.failed.append((kind, alert_id))
                continue
            with conn.cursor() as cur:
                cur.execute("insert into ops.notifications_sent (alert_kind, alert_id, business_date, run_id, title, body) "
                            "values (%s, %s, %s, %s, %s, %s) on conflict do nothing",
                            (kind, alert_id, business_date, run_id, message.title, message.body))
            conn.commit()  # recorded as soon as sent: a failure later never sends it twice
            result.sent.append((kind, alert_id))
    log.info("alerts: %d sent tonight, %d sent before and still holding, %d refused", len(result.sent),
             result.already_sent, len(result.failed))
    if result.failed:
        raise NotificationFailed(f"{len(result.failed)} of {len(new)} alert messages were refused by a channel: "
                                 f"{result.failed[:5]}")
    return result


def notify_if_late(warehouse_url: str, *, dag_id: str, business_date: date, run_id: str, urls: list[str],
                   finished_at: datetime | None = None,
                   sender: Callable[[list[str], Message], bool] = send) -> bool:
    """Once per business date: a night published after its deadline says so (rule NIGHT_LATE).
    Returns whether a notice was sent now."""
    import psycopg2

    finished_at = finished_at or datetime.now(HOSPITAL_TZ)
    deadline = deadline_for(business_date)
    if finished_at <= deadline or not urls:
        return False
    message = late_message(dag_id=dag_id, business_date=business_date, finished_at=finished_at, deadline=deadline)
    with closing(psycopg2.connect(warehouse_url)) as conn:
        with conn.cursor() as cur:
            cur.execute("select 1 from ops.notifications_sent where alert_kind = 'night_late' and alert_id = %s",
                        (business_date.isoformat(),))
            if cur.fetchone():
                return False
        conn.commit()
        if not sender(urls, message):
            raise NotificationFailed(f"the late-night notice for {business_date} was refused by a channel")
        with conn.cursor() as cur:
            cur.execute("insert into ops.notifications_sent (alert_kind, alert_id, business_date, run_id, title, body) "
                        "values ('night_late', %s, %s, %s, %s, %s) on conflict do nothing",
                        (business_date.isoformat(), business_date, run_id, message.title, message.body))
        conn.commit()
    return True
