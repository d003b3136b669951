"""The dashboards in a real browser: a small pipeline run over every source (HIS, insurance, vendors,
survey platform, referral channels), then a real Apache Superset (its own virtualenv, installed from the
package index on first use: hospital_ops.bi.superset) provisioned from the dashboard spec and connected
as bi_reader, and Debian's Chromium headless (driven by playwright's Python client, never a downloaded
browser) opening every dashboard.

Checked: every chart's query answers with rows and no error, every chart draws (a table with rows or a
chart canvas) with no error on screen, figures on screen equal the marts they come from, and a second
provisioning duplicates nothing. Screenshots go to <project>/var/screenshots/bi/ for people to look at.

Duration on the 2-core machine: 7 to 17 min with Superset already installed, depending on the load
(the night 1.5 to 7 min, Superset's initialisation 1 to 3 min, the dashboards and Data Docs about 2 min);
CI installs Superset from scratch first (about 3 min more). Skipped, with the reason printed, only when Superset's
virtualenv cannot be installed.
"""

from __future__ import annotations

import re
import secrets
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from hospital_ops import security, warehouse
from hospital_ops.airflow_local import run_night
from hospital_ops.bi import spec as bi_spec
from hospital_ops.bi import superset
from hospital_ops.config import settings
from hospital_ops_sim.his import create_his_database, generate_his
from hospital_ops_sim.insurance import generate_insurance
from hospital_ops_sim.referral import generate_referral
from hospital_ops_sim.survey import generate_survey
from hospital_ops_sim.survey_api import SurveyApiServer
from hospital_ops_sim.vendor import generate_vendor_source
from nightly_runs import query

pytestmark = [pytest.mark.e2e, pytest.mark.bi]

END = date(2026, 11, 22)
MONTHS, VENDORS, SEED = 4, 13, 7
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PROJECT_VAR = settings().var_dir  # the project's var/, before the fixture points HOSPITAL_OPS_VAR_DIR elsewhere
SCREENSHOTS = PROJECT_VAR / "screenshots" / "bi"


@pytest.fixture(scope="module")
def installed() -> superset.Paths:
    """Superset's virtualenv (the project's var/superset/venv, shared with `hospital-ops bi`)."""
    p = superset.Paths(PROJECT_VAR / "superset")
    try:
        superset.ensure_installed(p)
    except superset.SupersetError as exc:
        pytest.skip(f"Superset's virtualenv could not be installed: {exc}")
    return p


@pytest.fixture(scope="module")
def consortium(tmp_path_factory, fresh_database):
    var_dir = tmp_path_factory.mktemp("var")
    inbox = var_dir / "inbox"
    url, his_url = fresh_database("bi_e2e"), fresh_database("bi_his")
    create_his_database(his_url)
    generate_his(his_url, end=END, months=MONTHS, hospitals=2, scale=0.2, seed=SEED)
    generate_insurance(his_url, inbox, end=END, seed=SEED)
    generate_vendor_source(inbox, end=END, months=MONTHS, vendors=VENDORS, hospitals=2, seed=SEED)
    survey = generate_survey(his_url, var_dir / "survey_platform.json", end=END, months=MONTHS, vendors=VENDORS,
                             seed=SEED)
    generate_referral(his_url, inbox, end=END, months=MONTHS, seed=SEED)
    # the BI role on this test database, as the warehouse module gives that role's URL
    reader = warehouse.with_database(warehouse.role_url(security.BI_READER), url.rsplit("/", 1)[1])
    token = secrets.token_urlsafe(16)
    with pytest.MonkeyPatch.context() as patch, SurveyApiServer.from_file(survey.out_file, token) as server:
        patch.setenv("HOSPITAL_OPS_VAR_DIR", str(var_dir))
        patch.setenv("HOSPITAL_OPS_INBOX", str(inbox))
        patch.setenv("WAREHOUSE_URL", url)
        patch.setenv("HIS_URL", his_url)
        patch.setenv("SURVEY_API_URL", server.base_url)
        patch.setenv("SURVEY_API_TOKEN", token)
        # two nights: the auditors' publications chart reads what earlier nights published (a night's own
        # publication follows its rpt_ build), so after one night it would rightly be empty
        for night in (END - timedelta(days=1), END):
            run = run_night(night, url)
            assert run.succeeded, f"the night of {night} failed: {run.failed_tasks} (log {run.log_file})"
        yield {"url": url, "reader_url": reader, "var_dir": var_dir}


@pytest.fixture(scope="module")
def server(installed: superset.Paths, consortium):
    p = superset.Paths(consortium["var_dir"] / "superset", venv_dir=installed.venv)
    superset.prepare(p, url=consortium["reader_url"])
    port = warehouse.free_port()
    process = superset.start_server(p, port)
    try:
        yield {"paths": p, "base": f"http://127.0.0.1:{port}",
               "password": superset.credentials(p)["admin_password"]}
    finally:
        superset.stop_server(process)


def _api(server) -> requests.Session:  # type: ignore[no-untyped-def]
    session = requests.Session()
    login = session.post(f"{server['base']}/api/v1/security/login", timeout=30,
                         json={"username": superset.ADMIN_USER, "password": server["password"], "provider": "db"})
    login.raise_for_status()
    session.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    return session


def _counts(server) -> dict[str, int]:  # type: ignore[no-untyped-def]
    api = _api(server)
    return {kind: api.get(f"{server['base']}/api/v1/{kind}/?q=(page_size:100)", timeout=30).json()["count"]
            for kind in ("dashboard", "chart", "dataset", "database")}


@pytest.fixture(scope="module")
def rendered(server):
    """Every dashboard opened in Chromium: per dashboard, the chart-data answers and what the page shows."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is not installed (.ci/run installs it)"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    spec = bi_spec.load()
    pages: dict[str, dict] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # tall enough for a whole dashboard, so the screenshot needs no resize (which redraws the charts)
        context = browser.new_context(viewport={"width": 1600, "height": 2400}, locale="zh-CN")
        page = context.new_page()
        page.goto(f"{server['base']}/login/")
        page.fill("#username", superset.ADMIN_USER)
        page.fill("#password", server["password"])
        page.press("#password", "Enter")
        page.wait_for_url("**/superset/welcome/**", timeout=60_000)
        for dashboard in spec.dashboards:
            answers: list[dict] = []

            def record(response, answers=answers):  # type: ignore[no-untyped-def]
                if "/api/v1/chart/data" in response.url:
                    try:
                        body = response.json()
                    except Exception:  # noqa: BLE001 - a body that is not JSON is itself the finding
                        body = {"unparsable": response.text()[:300]}
                    answers.append({"status": response.status, "body": body})

            page.on("response", record)
            started = time.monotonic()
            page.goto(f"{server['base']}/superset/dashboard/{dashboard.key.replace('_', '-')}/")
            page.wait_for_selector('[data-test="chart-grid-component"]', timeout=90_000)
            deadline = time.monotonic() + 120
            while len(answers) < len(dashboard.charts) and time.monotonic() < deadline:
                page.wait_for_timeout(500)
            page.wait_for_load_state("networkidle", timeout=60_000)
            page.wait_for_timeout(1500)  # the charts draw after their data arrived
            charts = page.eval_on_selector_all('[data-test="chart-grid-component"]', """
                holders => holders.map(h => ({
                    title: (h.querySelector('[data-test="editable-title"], .header-title') || {}).innerText || '',
                    table_rows: h.querySelectorAll('table tbody tr').length,
                    canvases: h.querySelectorAll('canvas, svg.echarts, div[_echarts_instance_]').length,
                    error: Array.from(h.querySelectorAll('[role="alert"], .ant-alert-error, [data-test="alert"]'))
                           .map(e => e.innerText).join(' | '),
                    loading: h.querySelectorAll('[data-test="loading-indicator"], .loading').length,
                    text: h.innerText,
                }))""")
            page.screenshot(path=str(SCREENSHOTS / f"{dashboard.key}.png"))
            page.remove_listener("response", record)
            pages[dashboard.key] = {"answers": answers, "charts": charts, "seconds": time.monotonic() - started,
                                    "page_text": page.inner_text("body")}
        browser.close()
    return pages


def _empty_models(url: str) -> set[str]:
    """The rpt_ models the small run left empty: an alert chart when no rule fired on its few months (the
    DRG rule needs 10 cases a group-month and three earlier months). Their charts must draw, empty, with
    no error; every other chart must show rows."""
    spec = bi_spec.load()
    models = {chart.model for dashboard in spec.dashboards for chart in dashboard.charts}
    return {model for model in models if query(url, f"select count(*) from marts.{model}")[0][0] == 0}


def test_every_chart_of_every_dashboard_answers_with_rows(rendered, consortium) -> None:
    spec = bi_spec.load()
    empty = _empty_models(consortium["url"])
    assert len(empty) <= 1, f"more than the DRG alerts are empty after the small run: {sorted(empty)}"
    for dashboard in spec.dashboards:
        answers = rendered[dashboard.key]["answers"]
        assert len(answers) >= len(dashboard.charts), (
            f"{dashboard.title}: {len(answers)} chart queries for {len(dashboard.charts)} charts")
        for answer in answers:
            assert answer["status"] == 200, f"{dashboard.title}: {answer}"
            results = answer["body"]["result"]
            assert all(not r.get("error") for r in results), f"{dashboard.title}: {results[0].get('error')}"
            for result in results:
                read = re.search(r"FROM marts\.(\w+)", result.get("query", ""))
                if read and read.group(1) in empty:
                    assert result["rowcount"] == 0, f"{dashboard.title}: rows from the empty {read.group(1)}"
                    continue
                assert result["rowcount"] > 0, (
                    f"{dashboard.title}: a chart query returned no rows: {result.get('query', '')[:400]}")


def test_every_chart_draws_without_an_error(rendered, consortium) -> None:
    spec = bi_spec.load()
    empty = _empty_models(consortium["url"])
    for dashboard in spec.dashboards:
        charts = rendered[dashboard.key]["charts"]
        assert len(charts) == len(dashboard.charts), f"{dashboard.title}: {len(charts)} charts on screen"
        for chart, declared in zip(charts, dashboard.charts, strict=True):
            where = f"{dashboard.title} / {declared.title}"
            assert not chart["error"], f"{where}: {chart['error']}"
            assert chart["loading"] == 0, f"{where}: still loading"
            if declared.model in empty:  # drawn, with nothing to show: the rule fired on nothing
                pass
            elif declared.type == "table":
                assert chart["table_rows"] > 0, f"{where}: a table with no rows"
            else:
                assert chart["canvases"] > 0, f"{where}: no chart drawn"
            assert declared.title_zh in chart["text"], f"{where}: the Chinese title is not on screen"
        text = rendered[dashboard.key]["page_text"]
        assert "Unexpected error" not in text, dashboard.title
        if not any(chart.model in empty for chart in dashboard.charts):
            assert "No results were returned" not in text, dashboard.title


def _table_rows(text: str) -> list[list[str]]:
    return [line.split("\t") for line in text.splitlines() if "\t" in line]


def test_figures_on_screen_equal_the_marts(rendered, consortium) -> None:
    url = consortium["url"]
    leadership = {c["title"]: c for c in rendered["leadership"]["charts"]}
    ledger = next(c for title, c in leadership.items() if title.startswith("医院工作台账"))
    rows = [r for r in _table_rows(ledger["text"]) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", r[1].strip())]
    assert rows, f"no ledger rows read from the page: {ledger['text'][:500]}"
    hospital, month, _visits, discharges, revenue = (cell.strip() for cell in rows[0][:5])
    ((mart_revenue, mart_discharges, drug_ratio),) = query(url, """
        select l.revenue_total_cny, l.discharges, l.drug_ratio
        from marts.fct_hospital_month_ledger l join marts.dim_hospitals h using (hospital_id)
        where h.hospital_name = %s and l.month = %s""", (hospital, month))
    assert Decimal(revenue.replace(",", "")) == Decimal(mart_revenue).quantize(Decimal("0.01")).normalize() or \
        Decimal(revenue.replace(",", "")) == Decimal(mart_revenue).quantize(Decimal("0.01"))
    assert int(discharges.replace(",", "")) == mart_discharges
    assert f"{Decimal(drug_ratio) * 100:.1f}%" in rows[0], (rows[0], drug_ratio)
    # the latest month shown is the latest closed month of the mart (closed months only)
    (latest_closed,) = query(url, "select max(month) from marts.fct_hospital_month_ledger where is_closed_month")[0]
    assert month == latest_closed.isoformat()

    # every open vendor warning of the scoring model is queried and listed, red first
    vendor = {c["title"]: c for c in rendered["vendor_supervision"]["charts"]}
    warnings = next(c for title, c in vendor.items() if title.startswith("未解除预警明细"))
    open_warnings = query(url, "select colour, count(*) from scoring.vendor_risk_warnings where status <> 'resolved' "
                               "group by colour")
    assert open_warnings, "the run raised no vendor warning to show"
    answer = next(a for a in rendered["vendor_supervision"]["answers"]
                  if "rpt_vendor_open_warnings" in a["body"]["result"][0]["query"])
    assert answer["body"]["result"][0]["rowcount"] == sum(n for _, n in open_warnings)
    shown = [line.split("\t") for line in warnings["text"].splitlines() if re.match(r"(red|yellow|blue)\t", line)]
    assert len(shown) == sum(n for _, n in open_warnings)
    order = {"red": 1, "yellow": 2, "blue": 3}
    assert [row[0] for row in shown] == sorted((row[0] for row in shown), key=order.get)
    assert dict(open_warnings) == {colour: sum(row[0] == colour for row in shown) for colour in dict(open_warnings)}


def test_source_freshness_on_screen_equals_the_mart(rendered, consortium) -> None:
    """The data team's freshness table: its query reads every check of the mart, and each row on screen
    shows the age the mart holds (rounded only by the chart's number format) beside its names."""
    url = consortium["url"]
    mart = {(d.isoformat(), name, table): (age, status) for d, name, table, age, status in query(
        url, "select business_date, source_system_name, table_name, age_hours, freshness_status "
             "from marts.rpt_source_freshness")}
    (checked,) = query(url, "select count(*) from dq.source_freshness")[0]
    assert mart and len(mart) == checked, "the freshness chart's model lost or invented a check"
    answer = next(a for a in rendered["data_team"]["answers"]
                  if "rpt_source_freshness" in a["body"]["result"][0]["query"])
    assert answer["body"]["result"][0]["rowcount"] == checked
    chart = next(c for c in rendered["data_team"]["charts"] if c["title"].startswith("数据源时效"))
    rows = [[cell.strip() for cell in r] for r in _table_rows(chart["text"])
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", r[0].strip())]
    assert rows, f"no freshness rows read from the page: {chart['text'][:500]}"
    for business_date, name, table, status, age, *_ in rows:
        expected_age, expected_status = mart[(business_date, name, table)]
        assert status == expected_status
        assert abs(Decimal(age.replace(",", "")) - expected_age) <= Decimal("0.005"), (table, age, expected_age)


def test_the_summary_speaks_for_the_platform(consortium) -> None:
    """`hospital-ops summary`'s text: the ledger headline, insurance, alerts, channel grades and vendors as
    the rpt_ models hold them, every generator's planted scenarios beside what was raised, the night's
    dbt warnings, and the BI and auditor roles' connections, never the writer's password."""
    import json
    from urllib.parse import urlsplit

    from hospital_ops.pipeline import format_summary, night_summary

    url = consortium["url"]
    summary = night_summary(warehouse_url=url, business_date=END)
    text = format_summary(summary, warehouse.redacted(url), detailed=True)
    # the ledger's headline: each hospital's latest complete month, its revenue in yuan
    latest = query(url, "select hospital_name, revenue_total_cny, discharges from marts.rpt_hospital_ledger_trend "
                        "where month = (select max(month) from marts.rpt_hospital_ledger_trend)")
    assert latest
    for hospital, revenue, discharges in latest:
        line = next(line for line in text.splitlines() if line.strip().startswith(f"{hospital}:"))
        assert f"{revenue:,.0f} 元" in line and f"出院 discharges {discharges} 例" in line, line
    ((drg_profit, loss_groups),) = query(url, "select drg_profit_cny, drg_loss_making_groups from "
                                              "marts.rpt_insurance_month order by month desc limit 1")
    assert f"{drg_profit:,.0f} 元, 亏损病组 {loss_groups} 组" in text
    (alerts,) = query(url, "select count(*) from marts.rpt_service_quality_alerts")[0]
    assert f"服务质量预警 Service-quality alerts (未解除 not resolved): {alerts} 条" in text
    grades = dict(query(url, "select grade, count(*) from marts.rpt_channel_quarter_grades "
                             "where quarter = (select max(quarter) from marts.rpt_channel_quarter_grades) group by 1"))
    assert grades and ", ".join(f"{g} {n}" for g, n in sorted(grades.items())) in text
    # planted scenarios of every source beside what was raised: a planted vendor with warnings shows its rules
    # (fires); a vendor nobody planted is not listed among the scenarios (does not)
    vendor_scenarios = {k: v for k, v in json.loads((consortium["var_dir"] / "inbox" / "vendor" / "_scenarios.json")
                                                    .read_text(encoding="utf-8")).items() if k != "defects"}
    section = text.split("Planted scenarios → what the platform raised:", 1)[1].split("dbt 测试警告", 1)[0]
    for name, facts in vendor_scenarios.items():
        line = next(line for line in section.splitlines() if f" {name} " in f"{line} ")
        rules = {rule for (rule,) in query(url, "select distinct rule_id from marts.rpt_vendor_open_warnings "
                                                "where vendor_id = %s", (facts["vendor_id"],))}
        assert all(rule in line for rule in rules), (line, rules)
    planted_vendors = {facts["vendor_id"] for facts in vendor_scenarios.values()}
    (unplanted,) = query(url, "select vendor_name from marts.rpt_vendor_supervision where vendor_id <> all(%s) "
                              "order by vendor_id limit 1", (sorted(planted_vendors),))[0]
    assert unplanted not in section
    assert {"第三方服务商 Vendors", "转诊渠道 Referral channels", "医保结算 Insurance"} <= {
        line.strip().split(":", 1)[0] for line in section.splitlines() if line.strip()}
    # the night's dbt warnings as the runner recorded them
    recorded = json.loads((consortium["var_dir"] / "dbt" / "test_warnings" / f"{END.isoformat()}.json")
                          .read_text(encoding="utf-8"))
    assert f"dbt test warnings tonight: {sum(len(w) for w in recorded.values())}" in text
    # where to look: BI's and the auditors' roles, passwords redacted; never the writer's
    writer = urlsplit(url)
    assert writer.password and writer.password not in text and f"//{writer.username}" not in text
    for role in (security.BI_READER, security.AUDITOR):  # the URL redacted, or (external warehouse) how to get it
        assert f"//{role}:***@" in text or f"hospital-ops warehouse url --role {role})" in text, role


def test_names_not_codes_on_screen(rendered, consortium) -> None:
    (name,) = query(consortium["url"], "select department_name from marts.dim_departments order by 1 limit 1")[0]
    assert name in rendered["department_heads"]["page_text"]
    codes = [code for (code,) in query(consortium["url"], "select department_id from marts.dim_departments")]
    assert not [code for code in codes if code in rendered["leadership"]["page_text"]]


def test_provisioning_again_updates_and_duplicates_nothing(server, consortium) -> None:
    spec = bi_spec.load()
    before = _counts(server)
    assert before == {"dashboard": len(spec.dashboards), "chart": sum(len(d.charts) for d in spec.dashboards),
                      "dataset": len(spec.models), "database": 1}
    superset.provision(server["paths"], spec, consortium["reader_url"])
    assert _counts(server) == before


def test_the_warehouse_is_connected_as_bi_reader(server) -> None:
    api = _api(server)
    (database,) = api.get(f"{server['base']}/api/v1/database/?q=(page_size:10)", timeout=30).json()["result"]
    detail = api.get(f"{server['base']}/api/v1/database/{database['id']}/connection", timeout=30).json()["result"]
    assert f"//{security.BI_READER}" in detail["sqlalchemy_uri"] and security.WRITER not in detail["sqlalchemy_uri"]


def test_data_docs_index_works_offline_and_lists_the_night(consortium) -> None:
    """The night's Great Expectations Data Docs in Chromium with every request to the network refused:
    the index's table (drawn by its scripts) lists the night's validations by business date."""
    from playwright.sync_api import sync_playwright

    index = consortium["var_dir"] / "data_docs" / "index.html"
    assert index.is_file(), f"no Data Docs at {index}"
    refused: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.route("http*://**", lambda route: (refused.append(route.request.url), route.abort()))
        page.goto(index.as_uri())
        page.wait_for_selector("table tbody tr", timeout=30_000)
        rows = page.eval_on_selector_all("table tbody tr", "rows => rows.map(r => r.innerText)")
        page.screenshot(path=str(SCREENSHOTS / "data_docs_index.png"), full_page=False)
        browser.close()
    assert not [url for url in refused if not url.startswith("https://greatexpectations.io")], refused
    assert any(END.isoformat() in row for row in rows), rows[:5]
