"""Metabase provisioning against a local stub of Metabase's REST API (no Metabase, no PostgreSQL).

The stub (http.server on 127.0.0.1, a free port, one thread per request, every call bounded by
timeouts) implements just the endpoints hospital_ops.metabase calls and records each request. The
warehouse's "which relations exist" function is injected.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from hospital_ops import metabase, security

ADMIN_EMAIL = "admin@hospital.example"
ADMIN_PASSWORD = "Adm1n-Passw0rd-for-tests"
BI_PASSWORD = "bi-reader-secret-42"
WRITER_PASSWORD = "writer-secret-77"
SETUP_TOKEN = "5a1f0c6e-setup-token"
WAREHOUSE = {"host": "warehouse", "port": 5432, "dbname": "hospital_ops", "user": security.BI_READER,
             "password": BI_PASSWORD}

# what Metabase's sync finds in the marts and scoring schemas (schema, table) → columns
SYNCED_TABLES = {
    ("marts", "dim_vendors"): ["vendor_id", "vendor_name"],
    ("marts", "fct_vendor_month_kpis"): ["vendor_month_id", "vendor_id", "month", "lab_accuracy"],
    ("scoring", "vendor_risk_warnings"): ["warning_id", "vendor_id", "colour", "status"],
    ("marts", "rpt_vendor_supervision"): ["vendor_id", "credit_rating", "open_red_warnings"],
    ("scoring", "vendor_supervision_decisions"): ["decision_id", "vendor_id", "decision"],
    ("marts", "rpt_vendor_open_warnings"): ["warning_id", "vendor_name", "colour"],
    ("marts", "rpt_vendor_decisions"): ["decision_id", "vendor_name", "decision"],
    ("marts", "rpt_vendor_kpis"): ["vendor_month_id", "vendor_name", "lab_accuracy"],
}
VENDOR_RELATIONS = {f"{schema}.{table}" for schema, table in SYNCED_TABLES}
VENDOR_SUPERVISION = next(d for d in metabase.DASHBOARDS if d.name.startswith("第三方服务商监管"))


class FakeMetabase:
    """In-memory Metabase: just enough state for setup, databases, sync, fields, collections, cards
    and dashboards."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.ids = itertools.count(1)
        self.user: dict | None = None
        self.sessions: set[str] = set()
        self.databases: dict[int, dict] = {}
        self.syncs_requested = 0
        self.metadata_calls_since_sync = 0
        self.tables: dict[int, dict] = {}
        self.fields: dict[int, dict] = {}
        self.collections: dict[int, dict] = {}
        self.cards: dict[int, dict] = {}
        self.dashboards: dict[int, dict] = {}
        # what the warehouse's marts and scoring schemas hold: the next sync finds it
        self.warehouse_tables: dict[tuple[str, str], list[str]] = dict(SYNCED_TABLES)

    # ---- helpers
    def _session_ok(self, headers) -> bool:  # type: ignore[no-untyped-def]
        return headers.get("X-Metabase-Session") in self.sessions

    def _new_session(self) -> dict:
        session = f"session-{next(self.ids)}"
        self.sessions.add(session)
        return {"id": session}

    def _build_tables(self, database_id: int) -> None:
        synced = {(t["schema"], t["name"]) for t in self.tables.values()}
        for (schema, name), columns in self.warehouse_tables.items():
            if (schema, name) in synced:
                continue
            table_id = next(self.ids)
            fields = []
            for column in columns:
                field = {"id": next(self.ids), "name": column, "table_id": table_id, "description": None}
                self.fields[field["id"]] = field
                fields.append(field)
            self.tables[table_id] = {"id": table_id, "db_id": database_id, "schema": schema, "name": name,
                                     "description": None, "fields": fields}

    def handle(self, method: str, path: str, query: dict, body, headers):  # type: ignore[no-untyped-def]
        self.requests.append({"method": method, "path": path, "query": query, "body": body,
                              "session": headers.get("X-Metabase-Session")})
        if path == "/api/health":
            return 200, {"status": "ok"}
        if path == "/api/session/properties":
            return 200, {"has-user-setup": self.user is not None,
                         "setup-token": None if self.user else SETUP_TOKEN, "version": {"tag": "v0.stub"}}
        if method == "POST" and path == "/api/setup":
            if self.user is not None or body.get("token") != SETUP_TOKEN:
                return 403, {"message": "setup token does not match"}
            self.user = body["user"]
            return 200, self._new_session()
        if method == "POST" and path == "/api/session":
            user = self.user or {}
            if (body.get("username"), body.get("password")) != (user.get("email"), user.get("password")):
                # like a careless server: echo what it got (the client must redact it)
                return 401, {"errors": {"password": "did not match stored password"}, "got": body}
            return 200, self._new_session()
        if not self._session_ok(headers):
            return 401, "Unauthenticated"

        if path == "/api/database" and method == "GET":
            return 200, {"data": [{k: v for k, v in db.items() if k != "details"} for db in self.databases.values()],
                         "total": len(self.databases)}
        if path == "/api/database" and method == "POST":
            database = {"id": next(self.ids), **body}
            self.databases[database["id"]] = database
            return 200, database
        match = re.fullmatch(r"/api/database/(\d+)(/sync_schema|/metadata)?", path)
        if match:
            database = self.databases.get(int(match.group(1)))
            if database is None:
                return 404, "Not found."
            if method == "PUT" and match.group(2) is None:
                database.update(body)
                return 200, database
            if method == "POST" and match.group(2) == "/sync_schema":
                self.syncs_requested += 1
                self.metadata_calls_since_sync = 0
                self._build_tables(database["id"])
                return 200, {"status": "ok"}
            if method == "GET" and match.group(2) == "/metadata":
                self.metadata_calls_since_sync += 1
                # the sync is asynchronous: the first look right after triggering it finds nothing yet
                visible = self.syncs_requested and self.metadata_calls_since_sync > 1
                return 200, {"id": database["id"], "tables": list(self.tables.values()) if visible else []}
        match = re.fullmatch(r"/api/(field|table)/(\d+)", path)
        if match and method == "PUT":
            store = self.fields if match.group(1) == "field" else self.tables
            item = store.get(int(match.group(2)))
            if item is None:
                return 404, "Not found."
            item.update(body)
            return 200, item

        if path == "/api/collection" and method == "GET":
            return 200, [{"id": "root", "name": "Our analytics"}, *self.collections.values()]
        if path == "/api/collection" and method == "POST":
            collection = {"id": next(self.ids), "name": body["name"], "archived": False, "personal_owner_id": None}
            self.collections[collection["id"]] = collection
            return 200, collection
        match = re.fullmatch(r"/api/collection/(\d+)/items", path)
        if match and method == "GET":
            collection_id = int(match.group(1))
            models = query.get("models", [])
            items = []
            if "card" in models:
                items += [{"id": c["id"], "name": c["name"], "model": "card"}
                          for c in self.cards.values() if c["collection_id"] == collection_id]
            if "dashboard" in models:
                items += [{"id": d["id"], "name": d["name"], "model": "dashboard"}
                          for d in self.dashboards.values() if d["collection_id"] == collection_id]
            return 200, {"data": items, "total": len(items)}

        if path == "/api/card" and method == "POST":
            card = {"id": next(self.ids), **body}
            self.cards[card["id"]] = card
            return 200, card
        match = re.fullmatch(r"/api/card/(\d+)", path)
        if match:
            card = self.cards.get(int(match.group(1)))
            if card is None:
                return 404, "Not found."
            if method == "PUT":
                card.update(body)
            return 200, card

        if path == "/api/dashboard" and method == "POST":
            dashboard = {"id": next(self.ids), "dashcards": [], "tabs": [], **body}
            self.dashboards[dashboard["id"]] = dashboard
            return 200, dashboard
        match = re.fullmatch(r"/api/dashboard/(\d+)", path)
        if match:
            dashboard = self.dashboards.get(int(match.group(1)))
            if dashboard is None:
                return 404, "Not found."
            if method == "PUT":
                known = {dc["id"] for dc in dashboard["dashcards"]}
                dashcards = []
                for dc in body.get("dashcards", dashboard["dashcards"]):
                    if dc["id"] < 0:
                        dc = {**dc, "id": next(self.ids)}
                    elif dc["id"] not in known:
                        return 400, {"message": f"unknown dashcard {dc['id']}"}
                    dashcards.append(dc)
                dashboard["dashcards"] = dashcards
            return 200, dashboard
        return 404, f"stub has no {method} {path}"


@pytest.fixture
def fake_metabase():
    fake = FakeMetabase()

    class Handler(BaseHTTPRequestHandler):
        timeout = 10  # a stuck client cannot hold a thread forever

        def _serve(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            with fake.lock:
                status, payload = fake.handle(self.command, split.path, parse_qs(split.query), body, self.headers)
            data = (json.dumps(payload) if not isinstance(payload, str) else payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if not isinstance(payload, str) else "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _serve

        def log_message(self, *args) -> None:  # keep pytest output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    """A small dbt manifest: models built into *_build schemas, descriptions "English 中文"."""
    nodes = {
        "model.hospital_ops.fct_vendor_month_kpis": {
            "resource_type": "model", "name": "fct_vendor_month_kpis", "alias": "fct_vendor_month_kpis",
            "schema": "marts_build",
            "description": "Vendor KPIs 第三方服务商月度指标 — one row per vendor per month,\n"
                           " every rate next to its parts.\n",
            "columns": {
                "vendor_id": {"name": "vendor_id", "description": "Vendor id 服务商编号"},
                "lab_accuracy": {"name": "lab_accuracy", "description": "Lab accuracy 检验准确率"},
                "month": {"name": "month", "description": ""},
                "not_synced_column": {"name": "not_synced_column", "description": "Something 某列"},
            },
        },
        "model.hospital_ops.vendor_risk_warnings": {
            "resource_type": "model", "name": "vendor_risk_warnings", "alias": "vendor_risk_warnings",
            "schema": "scoring_build", "description": "Vendor risk warnings 三级预警",
            "columns": {"colour": {"name": "colour",
                                   "description": "Warning level 预警等级 — blue 蓝, yellow 黄, red 红"}},
        },
        "model.hospital_ops.stg_vendor__registry": {
            "resource_type": "model", "name": "stg_vendor__registry", "schema": "staging",
            "description": "Staging — never BI 暂存",
            "columns": {"vendor_id": {"description": "Vendor id 服务商编号"}},
        },
        "test.hospital_ops.unique_vendor_id": {"resource_type": "test", "name": "unique_vendor_id",
                                               "schema": "marts_build"},
    }
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"metadata": {"dbt_schema_version": "v12"}, "nodes": nodes}, ensure_ascii=False),
                    encoding="utf-8")
    return path


def _run(fake: FakeMetabase, manifest: Path, relations: set[str]) -> dict:
    return metabase.setup_metabase(
        fake.url, admin_email=ADMIN_EMAIL, admin_password=ADMIN_PASSWORD, warehouse=WAREHOUSE,
        dbt_manifest_path=manifest, relations_exist=lambda names: set(names) & relations,
        ready_timeout=5, sync_timeout=5, poll_interval=0.01, http_timeout=5,
    )


def _calls(requests: list[dict], method: str, pattern: str) -> list[dict]:
    return [r for r in requests if r["method"] == method and re.fullmatch(pattern, r["path"])]


def _index(requests: list[dict], method: str, pattern: str) -> int:
    return next(i for i, r in enumerate(requests) if r["method"] == method and re.fullmatch(pattern, r["path"]))


def test_first_run_sets_up_metabase_end_to_end(fake_metabase: FakeMetabase, manifest: Path) -> None:
    report = _run(fake_metabase, manifest, set(VENDOR_RELATIONS))
    requests = fake_metabase.requests

    # first-run setup with the setup token, not a login
    assert [(r["method"], r["path"]) for r in requests[:3]] == [
        ("GET", "/api/health"), ("GET", "/api/session/properties"), ("POST", "/api/setup")]
    setup = requests[2]["body"]
    assert setup["token"] == SETUP_TOKEN and setup["user"]["email"] == ADMIN_EMAIL
    assert not _calls(requests, "POST", "/api/session")
    assert report["session"] == "setup completed"
    session = requests[3]["session"]
    assert session and all(r["session"] == session for r in requests[3:]), "every later call is authenticated"

    # the warehouse, as bi_reader, restricted to the published schemas
    (created_db,) = _calls(requests, "POST", "/api/database")
    details = created_db["body"]["details"]
    assert created_db["body"]["engine"] == "postgres"
    assert (details["user"], details["password"]) == (security.BI_READER, BI_PASSWORD)
    assert (details["host"], details["port"], details["dbname"]) == ("warehouse", 5432, "hospital_ops")
    assert details["schema-filters-type"] == "inclusion" and details["schema-filters-patterns"] == "marts,scoring"
    everything_sent = json.dumps([r["body"] for r in requests], ensure_ascii=False)
    assert security.WRITER not in everything_sent and WRITER_PASSWORD not in everything_sent

    # sync after the database exists, descriptions after the sync has shown the tables
    database_id = report["database"]["id"]
    sync_at = _index(requests, "POST", rf"/api/database/{database_id}/sync_schema")
    assert _index(requests, "POST", "/api/database") < sync_at < _index(requests, "PUT", r"/api/field/\d+")
    assert len(_calls(requests, "GET", rf"/api/database/{database_id}/metadata")) >= 2, "waited for the sync"
    assert report["sync"]["not_synced_yet"] == []

    # dbt descriptions, English with the Chinese name, on the right fields and tables only
    pushed = {fake_metabase.fields[int(r["path"].rsplit("/", 1)[1])]["name"]: r["body"]["description"]
              for r in _calls(requests, "PUT", r"/api/field/\d+")}
    assert pushed == {"vendor_id": "Vendor id 服务商编号", "lab_accuracy": "Lab accuracy 检验准确率",
                      "colour": "Warning level 预警等级 — blue 蓝, yellow 黄, red 红"}
    tables = {fake_metabase.tables[int(r["path"].rsplit("/", 1)[1])]["name"]: r["body"]["description"]
              for r in _calls(requests, "PUT", r"/api/table/\d+")}
    assert tables == {"fct_vendor_month_kpis": "Vendor KPIs 第三方服务商月度指标 — one row per vendor per month, "
                                               "every rate next to its parts.",
                      "vendor_risk_warnings": "Vendor risk warnings 三级预警"}
    assert report["descriptions"]["columns_not_in_metabase"] == ["marts.fct_vendor_month_kpis.not_synced_column"]

    # the vendor dashboard with native-SQL cards; the other dashboards wait for their marts
    (dashboard_post,) = _calls(requests, "POST", "/api/dashboard")
    assert dashboard_post["body"]["name"] == VENDOR_SUPERVISION.name == "第三方服务商监管 Vendor supervision"
    card_posts = _calls(requests, "POST", "/api/card")
    assert [c["body"]["name"] for c in card_posts] == [c.name for c in VENDOR_SUPERVISION.cards]
    for post in card_posts:
        query = post["body"]["dataset_query"]
        assert query["type"] == "native" and query["database"] == database_id
        sql = query["native"]["query"]
        # an rpt_ model's columns as they are: no formula, month filter or join in a card
        assert re.fullmatch(r"select [a-z_0-9,\s]+\nfrom marts\.rpt_[a-z_]+(\norder by [a-z_0-9, ]+)?", sql), sql
        titles = [setting["column_title"] for setting in post["body"]["visualization_settings"]["column_settings"].values()]
        assert titles and all(re.search(r"[\u4e00-\u9fff]", t) and re.search(r"[A-Za-z]", t) for t in titles)
    assert {re.search(r"from (\S+)", c["body"]["dataset_query"]["native"]["query"]).group(1) for c in card_posts} == {
        "marts.rpt_vendor_supervision", "marts.rpt_vendor_open_warnings", "marts.rpt_vendor_decisions",
        "marts.rpt_vendor_kpis"}
    (dashboard_put,) = _calls(requests, "PUT", r"/api/dashboard/\d+")
    dashcards = dashboard_put["body"]["dashcards"]
    assert sorted(dc["card_id"] for dc in dashcards) == sorted(fake_metabase.cards)
    assert all(dc["id"] < 0 for dc in dashcards), "new dashcards carry negative ids"
    assert all(dc["col"] + dc["size_x"] <= 24 for dc in dashcards)
    cells = [(dc["row"], dc["col"]) for dc in dashcards]
    assert len(set(cells)) == len(cells), "no two cards on the same spot"

    skipped = {s["name"]: s for s in report["skipped_dashboards"]}
    assert set(skipped) == {d.name for d in metabase.DASHBOARDS} - {VENDOR_SUPERVISION.name}
    assert "marts.rpt_department_ledger_latest" in skipped["科室主任看板 Department heads"]["reason"]
    cards = len(VENDOR_SUPERVISION.cards)
    assert report["created"] == {"databases": 1, "collections": 1, "cards": cards, "dashboards": 1, "dashcards": cards}
    text = metabase.format_report(report)
    assert VENDOR_SUPERVISION.name in text and "skipped" in text and BI_PASSWORD not in text


def test_second_run_creates_nothing(fake_metabase: FakeMetabase, manifest: Path) -> None:
    _run(fake_metabase, manifest, set(VENDOR_RELATIONS))
    first = len(fake_metabase.requests)
    state = (len(fake_metabase.databases), len(fake_metabase.collections), len(fake_metabase.cards),
             len(fake_metabase.dashboards), sum(len(d["dashcards"]) for d in fake_metabase.dashboards.values()))

    report = _run(fake_metabase, manifest, set(VENDOR_RELATIONS))
    again = fake_metabase.requests[first:]

    assert [(r["method"], r["path"]) for r in again[:3]] == [
        ("GET", "/api/health"), ("GET", "/api/session/properties"), ("POST", "/api/session")]
    assert not _calls(again, "POST", "/api/setup")
    created = [(r["method"], r["path"]) for r in again
               if r["method"] == "POST" and not r["path"].endswith("/sync_schema") and r["path"] != "/api/session"]
    assert created == [], f"a second run must create nothing, it sent {created}"
    rewritten = [r["path"] for r in again if r["method"] == "PUT" and not re.fullmatch(r"/api/database/\d+", r["path"])]
    assert rewritten == [], f"unchanged descriptions, cards and dashboards are left alone, got {rewritten}"
    (database_put,) = _calls(again, "PUT", r"/api/database/\d+")
    assert database_put["body"]["details"]["user"] == security.BI_READER
    assert _calls(again, "POST", r"/api/database/\d+/sync_schema"), "every run re-syncs"
    assert report["created"] == {} and report["updated"] == {}
    assert report["database"]["action"] == "updated"
    assert [d["action"] for d in report["dashboards"]] == ["found"]
    assert state == (len(fake_metabase.databases), len(fake_metabase.collections), len(fake_metabase.cards),
                     len(fake_metabase.dashboards), sum(len(d["dashcards"]) for d in fake_metabase.dashboards.values()))


def test_a_dashboard_appears_once_its_relations_exist(fake_metabase: FakeMetabase, manifest: Path) -> None:
    _run(fake_metabase, manifest, set(VENDOR_RELATIONS))
    before = len(fake_metabase.requests)
    vendor_dashcards = {d["name"]: list(d["dashcards"]) for d in fake_metabase.dashboards.values()}

    fake_metabase.warehouse_tables[("marts", "rpt_department_ledger_latest")] = ["department_id", "month"]
    report = _run(fake_metabase, manifest, VENDOR_RELATIONS | {"marts.rpt_department_ledger_latest"})
    later = fake_metabase.requests[before:]

    assert report["sync"]["not_synced_yet"] == []

    assert [r["body"]["name"] for r in _calls(later, "POST", "/api/dashboard")] == ["科室主任看板 Department heads"]
    (card,) = _calls(later, "POST", "/api/card")
    assert "marts.rpt_department_ledger_latest" in card["body"]["dataset_query"]["native"]["query"]
    assert report["created"] == {"cards": 1, "dashboards": 1, "dashcards": 1}
    assert "科室主任看板 Department heads" not in {s["name"] for s in report["skipped_dashboards"]}
    vendor = next(d for d in fake_metabase.dashboards.values() if d["name"] == VENDOR_SUPERVISION.name)
    assert vendor["dashcards"] == vendor_dashcards[VENDOR_SUPERVISION.name]


def test_a_card_whose_sql_changed_is_updated_in_place(fake_metabase: FakeMetabase, manifest: Path) -> None:
    _run(fake_metabase, manifest, set(VENDOR_RELATIONS))
    card = next(c for c in fake_metabase.cards.values() if c["name"].startswith("未解除预警明细"))
    card["dataset_query"]["native"]["query"] = "select 1 -- edited by hand"
    before = len(fake_metabase.requests)

    report = _run(fake_metabase, manifest, set(VENDOR_RELATIONS))

    (put,) = _calls(fake_metabase.requests[before:], "PUT", r"/api/card/\d+")
    assert put["path"] == f"/api/card/{card['id']}"
    assert "from marts.rpt_vendor_open_warnings" in card["dataset_query"]["native"]["query"]
    assert report["updated"] == {"cards": 1} and report["created"] == {}


def test_a_table_the_sync_never_shows_is_reported_not_waited_for_forever(fake_metabase: FakeMetabase,
                                                                         manifest: Path) -> None:
    report = metabase.setup_metabase(
        fake_metabase.url, admin_email=ADMIN_EMAIL, admin_password=ADMIN_PASSWORD, warehouse=WAREHOUSE,
        dbt_manifest_path=manifest, relations_exist=lambda names: set(names) & (VENDOR_RELATIONS | {"scoring.late"}),
        dashboards_spec=[metabase.DashboardSpec("Late 迟到", "",
                                                (metabase.CardSpec("Late", "select 1", ("scoring.late",)),))],
        ready_timeout=5, sync_timeout=0.3, poll_interval=0.01, http_timeout=5)
    assert report["sync"]["not_synced_yet"] == ["scoring.late"]
    assert report["created"]["dashboards"] == 1, "native SQL cards do not need Metabase's sync"


def test_refuses_to_connect_metabase_as_the_writer(fake_metabase: FakeMetabase, manifest: Path) -> None:
    with pytest.raises(metabase.MetabaseError, match="bi_reader"):
        metabase.setup_metabase(
            fake_metabase.url, admin_email=ADMIN_EMAIL, admin_password=ADMIN_PASSWORD,
            warehouse={**WAREHOUSE, "user": security.WRITER, "password": WRITER_PASSWORD},
            dbt_manifest_path=manifest, relations_exist=lambda names: set(), ready_timeout=1, poll_interval=0.01)
    assert fake_metabase.requests == [], "nothing is sent before the role is checked"


def test_a_wrong_admin_password_fails_without_leaking_it(fake_metabase: FakeMetabase, manifest: Path) -> None:
    _run(fake_metabase, manifest, set(VENDOR_RELATIONS))
    with pytest.raises(metabase.MetabaseError) as failure:
        metabase.setup_metabase(
            fake_metabase.url, admin_email=ADMIN_EMAIL, admin_password="Wrong-Passw0rd-xyz", warehouse=WAREHOUSE,
            dbt_manifest_path=manifest, relations_exist=lambda names: set(), ready_timeout=1, poll_interval=0.01,
            http_timeout=5)
    assert "HTTP 401" in str(failure.value)
    assert "Wrong-Passw0rd-xyz" not in str(failure.value) and BI_PASSWORD not in str(failure.value)


def test_without_a_manifest_descriptions_wait_and_the_rest_proceeds(fake_metabase: FakeMetabase,
                                                                    tmp_path: Path) -> None:
    report = _run(fake_metabase, tmp_path / "missing" / "manifest.json", set(VENDOR_RELATIONS))
    assert "no dbt manifest" in report["descriptions"]["skipped"]
    assert not _calls(fake_metabase.requests, "PUT", r"/api/field/\d+")
    assert report["created"]["dashboards"] == 1


def test_dbt_descriptions_cover_only_published_models(manifest: Path) -> None:
    docs = metabase.load_dbt_descriptions(manifest)
    assert set(docs) == {("marts", "fct_vendor_month_kpis"), ("scoring", "vendor_risk_warnings")}
    assert docs[("marts", "fct_vendor_month_kpis")].columns["vendor_id"] == "Vendor id 服务商编号"
    assert "month" not in docs[("marts", "fct_vendor_month_kpis")].columns, "empty descriptions are not pushed"


def _documented_columns() -> dict[str, set[str]]:
    import yaml

    root = Path(__file__).resolve().parents[1] / "dbt_project" / "models"
    documented: dict[str, set[str]] = {}
    for path in (sorted((root / "marts").rglob("*.yml")) + sorted((root / "scoring").rglob("*.yml"))
                 + sorted((root / "reporting").rglob("*.yml"))):
        for model in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("models", []):
            documented[model["name"]] = {c["name"] for c in model.get("columns", [])}
    return documented


def test_every_card_reads_documented_columns_of_its_rpt_model() -> None:
    """A card selects and orders by columns its rpt_ model's yml documents (and, with its contract,
    guarantees); a renamed column fails here before it breaks a dashboard."""
    documented = _documented_columns()
    checked = 0
    for spec in metabase.DASHBOARDS:
        for card in spec.cards:
            match = re.fullmatch(r"select (.+)\nfrom marts\.(rpt_\w+)(?:\norder by (.+))?", card.sql, re.DOTALL)
            assert match, card.sql
            columns = [c.strip() for c in match.group(1).split(",")]
            columns += [term.split()[0] for term in (match.group(3) or "").split(",") if term.strip()]
            missing = [c for c in columns if c not in documented[match.group(2)]]
            assert not missing, f"{card.name}: {match.group(2)} documents no {missing}"
            checked += len(columns)
    assert checked >= 100


def test_cli_entry_point_needs_credentials_from_the_environment(monkeypatch, capsys) -> None:
    for name in ("METABASE_ADMIN_EMAIL", "METABASE_ADMIN_PASSWORD", "METABASE_WAREHOUSE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    assert metabase.main(["setup", "--url", "http://127.0.0.1:9"]) == 2
    assert "METABASE_ADMIN_PASSWORD" in capsys.readouterr().err
