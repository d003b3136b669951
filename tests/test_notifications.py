"""Notifications reach real receivers the test starts: an SMTP server (aiosmtpd) for e-mail and an
HTTP endpoint standing in for a messaging webhook (Apprise json://), both in one Apprise URL list
given to the real DAG (HOSPITAL_OPS_ALERT_URLS → the `hospital_ops_alerts` connection).

A night over a generated consortium sends each red and yellow vendor warning holding that night
once (what the warehouse published decides which), plus the late-night notice; its rerun sends
nothing. A planted gate-breaking file fails the next night's quality gate: the failure reaches
both receivers with the failed expectation and the log link."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from datetime import date, datetime, timedelta
from email.header import decode_header, make_header
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from openpyxl import Workbook

from hospital_ops import notify
from hospital_ops.airflow_local import run_night
from hospital_ops.sources.vendor import SOURCE
from hospital_ops_sim.vendor import generate_vendor_source
from nightly_runs import query

pytestmark = pytest.mark.e2e

END = date(2026, 11, 22)


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.lock = threading.Lock()

    def add(self, title: str, body: str) -> None:
        with self.lock:
            self.messages.append({"title": title, "body": body})

    def titles(self) -> list[str]:
        return sorted(m["title"] for m in self.messages)


class _SmtpHandler:
    def __init__(self, inbox: _Inbox) -> None:
        self.inbox = inbox

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        part = message.get_body(preferencelist=("plain", "html"))
        self.inbox.add(str(make_header(decode_header(message["Subject"]))), part.get_content())
        return "250 OK"


@pytest.fixture(scope="module")
def receivers():
    mail, hook = _Inbox(), _Inbox()
    with socket.socket() as probe:  # aiosmtpd's controller needs its port up front
        probe.bind(("127.0.0.1", 0))
        smtp_port = probe.getsockname()[1]
    smtp = Controller(_SmtpHandler(mail), hostname="127.0.0.1", port=smtp_port)
    smtp.start()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            hook.add(payload["title"], payload["message"])
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):  # quiet
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    urls = [f"mailto://127.0.0.1:{smtp_port}?from=airflow@hospital.example&to=ops@hospital.example&mode=insecure",
            f"json://127.0.0.1:{http.server_address[1]}/hooks/hospital-ops"]
    yield {"mail": mail, "hook": hook, "urls": urls}
    smtp.stop()
    http.shutdown()


@pytest.fixture(scope="module")
def consortium(tmp_path_factory, fresh_database, receivers):
    var_dir = tmp_path_factory.mktemp("var")
    url = fresh_database("notify")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOSPITAL_OPS_VAR_DIR", str(var_dir))
        patch.setenv("HOSPITAL_OPS_INBOX", str(var_dir / "inbox"))
        patch.setenv("WAREHOUSE_URL", url)
        patch.setenv(notify.ALERT_URLS_ENV, " ".join(receivers["urls"]))
        for name in ("HIS_URL", "SURVEY_API_URL", "SURVEY_API_TOKEN"):
            patch.delenv(name, raising=False)
        generated = generate_vendor_source(var_dir / "inbox", end=END, months=3, vendors=12)
        first = run_night(END, url)
        after_first = {"mail": receivers["mail"].titles(), "hook": receivers["hook"].titles()}
        rerun = run_night(END, url)
        after_rerun = {"mail": receivers["mail"].titles(), "hook": receivers["hook"].titles()}
        yield {"url": url, "generated": generated, "first": first, "rerun": rerun, "after_first": after_first,
               "after_rerun": after_rerun, "run": lambda night: run_night(night, url)}


def _expected_warnings(url: str) -> list[tuple]:
    return query(url, "select warning_id, vendor_id, rule_id, colour, required_action from scoring.vendor_risk_warnings "
                      "where colour in ('red', 'yellow') and status <> 'resolved' and last_seen_on = %s", (END,))


def test_each_red_and_yellow_warning_is_sent_once_to_every_channel(consortium, receivers):
    assert consortium["first"].succeeded, consortium["first"].log_file
    expected = _expected_warnings(consortium["url"])
    assert any(colour == "red" for *_, colour, _ in expected) and any(c == "yellow" for *_, c, _ in expected)
    titles = consortium["after_first"]["mail"]
    warning_titles = [t for t in titles if t.startswith(("【红色预警】", "【黄色预警】"))]
    assert len(warning_titles) == len(expected)
    assert consortium["after_first"]["hook"] == titles  # the same messages on both channels
    sent = query(consortium["url"], "select alert_id from ops.notifications_sent where alert_kind = 'vendor_warning'")
    assert sorted(r[0] for r in sent) == sorted(w[0] for w in expected)


def test_a_warning_message_names_rule_evidence_and_required_action(consortium, receivers):
    warning_id, vendor, rule, _colour, action = next(w for w in _expected_warnings(consortium["url"]) if w[3] == "red")
    (title, _body), = query(consortium["url"], "select title, body from ops.notifications_sent where alert_id = %s",
                           (warning_id,))
    assert title == f"【红色预警】{vendor} {rule}"
    mails = [m for m in receivers["mail"].messages if m["title"] == title]
    assert mails and any(f"规则 rule {rule}" in m["body"] for m in mails)
    assert any("证据 evidence:" in m["body"] and f"处置要求 action: {action[:40]}" in m["body"] for m in mails)
    assert all(len(m["body"]) <= notify.MAX_BODY + 50 for m in receivers["mail"].messages)  # a phone's screen


def test_blue_warnings_page_no_one(consortium, receivers):
    blue = query(consortium["url"], "select count(*) from scoring.vendor_risk_warnings where colour = 'blue' "
                                    "and status <> 'resolved' and last_seen_on = %s", (END,))[0][0]
    assert blue > 0  # the planted case that must not page
    assert not [t for t in receivers["mail"].titles() if "蓝" in t or "blue" in t]


def test_the_late_night_is_noticed_once(consortium, receivers):
    # business date 2026-11-22 was due by 2026-11-23 07:00 hospital time, long past when the test runs
    assert notify.deadline_for(END) < datetime.now(notify.HOSPITAL_TZ)
    late = [m for m in receivers["mail"].messages if m["title"] == f"【夜间运行超时】hospital_ops_nightly {END}"]
    assert len(late) == 1 and "NIGHT_LATE" in late[0]["body"] and "07:00" in late[0]["body"]


def test_a_rerun_of_the_same_night_sends_nothing_twice(consortium):
    assert consortium["rerun"].succeeded
    assert consortium["after_rerun"] == consortium["after_first"]


def test_a_failed_quality_gate_reaches_both_channels_with_the_failed_expectation(consortium, receivers):
    night = END + timedelta(days=1)
    bad = consortium["generated"].inbox_dir / "vendor" / night.isoformat() / "service_report_V001_2026-11.xlsx"
    bad.parent.mkdir(parents=True)
    columns = [c.name for c in SOURCE.entity("service_reports").columns]
    values = {"vendor_id": "V001", "period": "2026-11", "revision": 1, "submitted_on": night.isoformat(),
              "service_volume": 100, "complaints_received": 0, "patients_surveyed": 10, "patients_satisfied": 12}
    book = Workbook()
    book.active.title = SOURCE.entity("service_reports").sheet
    book.active.append(columns)
    book.active.append([values[c] for c in columns])
    book.save(bad)
    before = len(receivers["mail"].messages)
    run = consortium["run"](night)
    assert run.failed_tasks == ["quality_gate"]
    failed = query(consortium["url"], "select distinct expectation_type from dq.validation_results "
                                      "where business_date = %s and not success", (night,))
    new_mail = receivers["mail"].messages[before:]
    gate = [m for m in new_mail if m["title"] == "【质量门禁失败】hospital_ops_nightly quality_gate"]
    assert len(gate) == 1, [m["title"] for m in new_mail]
    assert f"business date {night}" in gate[0]["body"]
    assert all(e in gate[0]["body"] for (e,) in failed), (failed, gate[0]["body"])
    assert "/dags/hospital_ops_nightly/runs/" in gate[0]["body"] and "/tasks/quality_gate" in gate[0]["body"]
    assert [m["title"] for m in receivers["hook"].messages[before:]] == [m["title"] for m in new_mail]


def test_message_selection_without_a_channel_sends_and_records_nothing(consortium):
    result = notify.notify_new_alerts(consortium["url"], business_date=END, run_id="no-channel", urls=[])
    assert result.sent == [] and result.already_sent == len(_expected_warnings(consortium["url"]))
