"""Provision Metabase for the warehouse through Metabase's REST API (`hospital-ops metabase setup`).

Idempotent — a second run creates nothing — so it runs at every `docker compose up` (the
`metabase-init` service) and again after a night has published new tables:

1. Wait for Metabase (GET /api/health). On a new instance, complete the first-run setup with the
   setup token (GET /api/session/properties → POST /api/setup); otherwise log in (POST /api/session).
2. Add the warehouse as a PostgreSQL database connected as `bi_reader` (never the writer: the role
   reads only the published `marts` and `scoring` schemas, and Metabase syncs only those), or update
   the existing one, so a rotated password reaches Metabase.
3. Trigger a schema sync and wait until the published tables appear.
4. Copy dbt's table and column descriptions (English with the Chinese name, as in the dbt yml files)
   from dbt's manifest.json onto Metabase's tables and fields, only where they differ.
5. Create the dashboards (DASHBOARDS, generated from include/hospital_ops/bi/dashboards.yml) in the
   "Hospital operations 医院运营" collection. Cards are native SQL selecting an rpt_ model's columns;
   a card is created only when all of its relations exist in the warehouse. A dashboard with no such card
   is not created, and the report says which relations it waits for. Later runs add the cards whose tables have appeared since.

Nothing here runs at import time; the HTTP client is `requests` (installed with Airflow).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hospital_ops import security
from hospital_ops.bi import spec as bi_spec

log = logging.getLogger(__name__)

DATABASE_NAME = "Hospital operations warehouse 医院运营数据仓库"
COLLECTION_NAME = "Hospital operations 医院运营"
SITE_NAME = "Hospital operations 医院运营"
WAREHOUSE_DB = "hospital_ops"
BI_SCHEMAS = ("marts", "scoring")
# dbt builds into the *_build schemas; `publish` copies them into the schemas BI reads
# (hospital_ops.pipeline.PUBLISHED_SCHEMAS)
PUBLISHED_SCHEMA = {"marts_build": "marts", "scoring_build": "scoring", "marts": "marts", "scoring": "scoring"}
GRID_WIDTH = 24  # Metabase's dashboard grid


class MetabaseError(RuntimeError):
    pass


# ------------------------------------------------------------------------------ dashboards spec


@dataclass(frozen=True)
class CardSpec:
    """A native-SQL question; created only when every relation it reads exists."""

    name: str
    sql: str
    relations: tuple[str, ...]
    display: str = "table"
    visualization_settings: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    size_x: int = 12
    size_y: int = 8


@dataclass(frozen=True)
class DashboardSpec:
    name: str
    description: str
    cards: tuple[CardSpec, ...]

    @property
    def relations(self) -> list[str]:
        return sorted({relation for card in self.cards for relation in card.relations})


_DISPLAY = {"table": "table", "line": "line", "bar": "bar", "big_number": "scalar"}


def card_sql(chart: bi_spec.Chart) -> str:
    """A chart's native SQL: its rpt_ model's columns as they are, in the spec's order. No formula,
    month filter or join lives here (they are the rpt_ model's)."""
    columns = ",\n       ".join(chart.read_columns if chart.type == "table" else chart.shown_columns)
    sql = f"select {columns}\nfrom {chart.relation}"
    order = chart.order_by or (((chart.x, True),) if chart.x else ())
    if order:
        sql += "\norder by " + ", ".join(f"{column}{'' if ascending else ' desc'}" for column, ascending in order)
    return sql


def _visualization_settings(chart: bi_spec.Chart, spec: bi_spec.Spec) -> dict[str, Any]:
    """Column titles in Chinese and English with units; ratios shown as percentages."""
    column_settings = {}
    for column in chart.shown_columns:
        label = spec.label(column)
        setting: dict[str, Any] = {"column_title": label.text}
        if label.is_percent:
            setting["number_style"] = "percent"
        column_settings[json.dumps(["name", column])] = setting
    settings: dict[str, Any] = {"column_settings": column_settings}
    if chart.type in ("line", "bar"):
        settings["graph.dimensions"] = [c for c in (chart.x, chart.series) if c]
        settings["graph.metrics"] = list(chart.metrics)
    if chart.type == "table":
        settings["table.columns"] = [{"name": c, "enabled": c in chart.columns} for c in chart.read_columns]
    return settings


def dashboards_from_spec(spec: bi_spec.Spec) -> tuple[DashboardSpec, ...]:
    """The Metabase dashboards of the dashboard spec (include/hospital_ops/bi/dashboards.yml)."""
    return tuple(
        DashboardSpec(
            name=dashboard.title,
            description=dashboard.description,
            cards=tuple(
                CardSpec(name=chart.title, sql=card_sql(chart), relations=(chart.relation,),
                         display=_DISPLAY[chart.type], visualization_settings=_visualization_settings(chart, spec),
                         description=f"{chart.relation}: {chart.title_en}", size_x=2 * chart.width,
                         size_y=8 if chart.type == "table" else 6)
                for chart in dashboard.charts),
        )
        for dashboard in spec.dashboards)


# Every dashboard, declared once in include/hospital_ops/bi/dashboards.yml; dbt's exposures
# (models/exposures.yml) and the Superset dashboards are generated from the same spec.
DASHBOARDS: tuple[DashboardSpec, ...] = dashboards_from_spec(bi_spec.load())


# ------------------------------------------------------------------------------ HTTP client


class MetabaseClient:
    """A thin JSON client; error messages never contain the secrets it was given."""

    def __init__(self, base_url: str, *, timeout: float = 30.0, secrets: Iterable[str] = ()) -> None:
        import requests

        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()
        self.http.headers.update({"Content-Type": "application/json", "Accept": "application/json"})
        self._secrets = [s for s in secrets if s]

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def use_session(self, session_id: str) -> None:
        self.http.headers["X-Metabase-Session"] = session_id

    def request(self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        import requests

        try:
            response = self.http.request(method, self.base_url + path, json=body, params=params,
                                         timeout=self.timeout)
        except requests.RequestException as exc:
            raise MetabaseError(self._redact(f"{method} {path}: {exc}")) from None
        if response.status_code >= 400:
            raise MetabaseError(self._redact(f"{method} {path} → HTTP {response.status_code}: {response.text[:800]}"))
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return response.text

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, body if body is not None else {})

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, body)


def _items(payload: Any) -> list[dict]:
    """List endpoints answer either a list or {"data": [...], "total": n} depending on the version."""
    if isinstance(payload, dict):
        payload = payload.get("data", [])
    return list(payload or [])


# ------------------------------------------------------------------------------ warehouse side


def warehouse_relations(warehouse: Mapping[str, Any]) -> Callable[[Iterable[str]], set[str]]:
    """Which of the given `schema.table` relations the BI role can read (information_schema shows
    exactly the tables the connecting role has privileges on)."""

    def exists(relations: Iterable[str]) -> set[str]:
        import psycopg2

        wanted = sorted(set(relations))
        if not wanted:
            return set()
        try:
            conn = psycopg2.connect(host=warehouse["host"], port=int(warehouse["port"]), dbname=warehouse["dbname"],
                                    user=warehouse["user"], password=warehouse["password"], connect_timeout=10)
        except psycopg2.OperationalError as exc:
            raise MetabaseError(f"cannot connect to the warehouse as {warehouse['user']}: {exc}".strip()) from None
        try:
            with conn.cursor() as cur:
                cur.execute("select table_schema || '.' || table_name from information_schema.tables "
                            "where table_schema || '.' || table_name = any(%s)", (wanted,))
                return {row[0] for row in cur.fetchall()}
        finally:
            conn.close()

    return exists


@dataclass(frozen=True)
class TableDoc:
    description: str
    columns: dict[str, str]


def load_dbt_descriptions(manifest_path: Path) -> dict[tuple[str, str], TableDoc]:
    """(schema, table) as BI sees it → the dbt model's description and its columns' descriptions,
    for the models published into marts and scoring."""
    manifest = json.loads(Path(manifest_path).read_text(encoding="utf-8"))
    docs: dict[tuple[str, str], TableDoc] = {}
    for node in manifest.get("nodes", {}).values():
        if node.get("resource_type") != "model":
            continue
        schema = PUBLISHED_SCHEMA.get(node.get("schema") or node.get("config", {}).get("schema") or "")
        if schema is None:
            continue
        table = node.get("alias") or node["name"]
        columns = {name: " ".join(str(column.get("description") or "").split())
                   for name, column in (node.get("columns") or {}).items()}
        docs[(schema, table)] = TableDoc(" ".join(str(node.get("description") or "").split()),
                                         {name: text for name, text in columns.items() if text})
    return docs


# ------------------------------------------------------------------------------ steps


def _wait_until_ready(client: MetabaseClient, timeout: float, poll: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        try:
            health = client.get("/api/health")
            if isinstance(health, dict) and health.get("status") == "ok":
                return
            last = str(health)
        except MetabaseError as exc:
            last = str(exc)
        if time.monotonic() >= deadline:
            raise MetabaseError(f"Metabase at {client.base_url} is not ready after {timeout:.0f} s ({last})")
        time.sleep(poll)


def _authenticate(client: MetabaseClient, *, email: str, password: str, site_name: str) -> str:
    properties = client.get("/api/session/properties") or {}
    token = properties.get("setup-token") or properties.get("setup_token")
    has_user = properties.get("has-user-setup")
    if has_user is None:
        has_user = not token
    if not has_user:
        if not token:
            raise MetabaseError("Metabase is not set up yet and offers no setup token")
        session = client.post("/api/setup", {
            "token": token,
            "user": {"email": email, "password": password, "first_name": "Hospital ops", "last_name": "Admin"},
            "prefs": {"site_name": site_name, "allow_tracking": False},
        })
        action = "setup completed"
    else:
        session = client.post("/api/session", {"username": email, "password": password})
        action = "logged in"
    if not isinstance(session, dict) or not session.get("id"):
        raise MetabaseError(f"Metabase returned no session ({action})")
    client.use_session(session["id"])
    return action


def _database_payload(name: str, warehouse: Mapping[str, Any]) -> dict:
    return {
        "name": name,
        "engine": "postgres",
        "details": {
            "host": warehouse["host"],
            "port": int(warehouse["port"]),
            "dbname": warehouse["dbname"],
            "user": warehouse["user"],
            "password": warehouse["password"],
            "ssl": bool(warehouse.get("ssl", False)),
            "tunnel-enabled": False,
            "advanced-options": False,
            # only the published schemas; bi_reader cannot read anything else anyway
            "schema-filters-type": "inclusion",
            "schema-filters-patterns": ",".join(BI_SCHEMAS),
        },
        "is_full_sync": True,
    }


def _ensure_database(client: MetabaseClient, name: str, warehouse: Mapping[str, Any], created: Counter) -> dict:
    existing = next((db for db in _items(client.get("/api/database")) if db.get("name") == name), None)
    payload = _database_payload(name, warehouse)
    if existing is None:
        database = client.post("/api/database", payload)
        created["databases"] += 1
        action = "created"
    else:
        # always re-send the details: Metabase stores the password encrypted and shows it masked, so
        # this is how a rotated bi_reader password reaches it
        database = client.put(f"/api/database/{existing['id']}", payload) or existing
        action = "updated"
    return {"id": database.get("id", existing and existing["id"]), "name": name, "action": action,
            "user": warehouse["user"]}


def _synced_tables(client: MetabaseClient, database_id: int) -> dict[tuple[str, str], dict]:
    metadata = client.get(f"/api/database/{database_id}/metadata") or {}
    return {(table.get("schema"), table.get("name")): table for table in metadata.get("tables", [])}


def _sync(client: MetabaseClient, database_id: int, expected: set[str], timeout: float, poll: float) -> dict:
    client.post(f"/api/database/{database_id}/sync_schema")
    started = time.monotonic()
    while True:
        tables = _synced_tables(client, database_id)
        present = {f"{schema}.{name}" for schema, name in tables}
        missing = expected - present
        if not missing or time.monotonic() - started >= timeout:
            break
        time.sleep(poll)
    return {"triggered": True, "tables": len(tables), "waited_s": round(time.monotonic() - started, 1),
            "not_synced_yet": sorted(missing), "_tables": tables}


def _push_descriptions(client: MetabaseClient, tables: dict[tuple[str, str], dict],
                       docs: dict[tuple[str, str], TableDoc], updated: Counter) -> dict:
    missing_tables: list[str] = []
    missing_fields: list[str] = []
    for key, doc in sorted(docs.items()):
        table = tables.get(key)
        if table is None:
            missing_tables.append(".".join(key))
            continue
        if doc.description and (table.get("description") or "") != doc.description:
            client.put(f"/api/table/{table['id']}", {"description": doc.description})
            updated["table_descriptions"] += 1
        fields = {f.get("name"): f for f in table.get("fields", []) if not f.get("parent_id")}
        for column, description in doc.columns.items():
            metabase_field = fields.get(column)
            if metabase_field is None:
                missing_fields.append(f"{'.'.join(key)}.{column}")
                continue
            if (metabase_field.get("description") or "") != description:
                client.put(f"/api/field/{metabase_field['id']}", {"description": description})
                updated["field_descriptions"] += 1
    return {"tables_documented": len(docs) - len(missing_tables), "tables_not_in_metabase": missing_tables,
            "columns_not_in_metabase": missing_fields}


def _ensure_collection(client: MetabaseClient, created: Counter) -> int:
    for collection in _items(client.get("/api/collection")):
        if (collection.get("name") == COLLECTION_NAME and not collection.get("archived")
                and not collection.get("personal_owner_id") and isinstance(collection.get("id"), int)):
            return collection["id"]
    collection = client.post("/api/collection", {
        "name": COLLECTION_NAME,
        "description": "Dashboards and questions provisioned by hospital-ops (hospital_ops.metabase).",
        "parent_id": None,
    })
    created["collections"] += 1
    return collection["id"]


def _collection_items(client: MetabaseClient, collection_id: int, model: str) -> dict[str, dict]:
    items = _items(client.get(f"/api/collection/{collection_id}/items", params={"models": model}))
    return {item["name"]: item for item in items if item.get("model", model) == model and not item.get("archived")}


def _native_query_text(dataset_query: Any) -> str | None:
    if not isinstance(dataset_query, dict):
        return None
    native = dataset_query.get("native")
    if isinstance(native, dict):
        return native.get("query")
    for stage in dataset_query.get("stages") or []:  # MBQL 5
        if isinstance(stage, dict) and isinstance(stage.get("native"), str):
            return stage["native"]
    return None


def _card_payload(card: CardSpec, database_id: int, collection_id: int) -> dict:
    return {
        "name": card.name,
        "description": card.description or None,
        "display": card.display,
        "visualization_settings": dict(card.visualization_settings),
        "collection_id": collection_id,
        "dataset_query": {"type": "native", "database": database_id,
                          "native": {"query": card.sql, "template-tags": {}}},
    }


def _ensure_card(client: MetabaseClient, card: CardSpec, existing: dict[str, dict], database_id: int,
                 collection_id: int, created: Counter, updated: Counter) -> int:
    payload = _card_payload(card, database_id, collection_id)
    if card.name not in existing:
        result = client.post("/api/card", payload)
        created["cards"] += 1
        existing[card.name] = {"id": result["id"], "name": card.name, "model": "card"}
        return result["id"]
    card_id = existing[card.name]["id"]
    current = client.get(f"/api/card/{card_id}") or {}
    current_sql = _native_query_text(current.get("dataset_query"))
    if current_sql is not None and (current_sql.strip() != card.sql.strip() or current.get("display") != card.display):
        client.put(f"/api/card/{card_id}", payload)
        updated["cards"] += 1
    return card_id


def _layout(existing: list[dict], sizes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Positions (row, col) for new cards: below what is there, filling rows of GRID_WIDTH."""
    row = max((int(dc.get("row") or 0) + int(dc.get("size_y") or 0) for dc in existing), default=0)
    col, row_height, positions = 0, 0, []
    for size_x, size_y in sizes:
        if col + size_x > GRID_WIDTH:
            row, col, row_height = row + row_height, 0, 0
        positions.append((row, col))
        col += size_x
        row_height = max(row_height, size_y)
    return positions


_DASHCARD_KEYS = ("id", "card_id", "dashboard_tab_id", "row", "col", "size_x", "size_y", "series",
                  "parameter_mappings", "visualization_settings", "action_id")


def _ensure_dashboard(client: MetabaseClient, spec: DashboardSpec, cards: list[tuple[CardSpec, int]],
                      existing: dict[str, dict], collection_id: int, created: Counter) -> dict:
    if spec.name in existing:
        dashboard_id, action = existing[spec.name]["id"], "found"
    else:
        dashboard = client.post("/api/dashboard", {"name": spec.name, "description": spec.description,
                                                   "collection_id": collection_id})
        dashboard_id, action = dashboard["id"], "created"
        created["dashboards"] += 1
    dashboard = client.get(f"/api/dashboard/{dashboard_id}") or {}
    current = dashboard.get("dashcards") or dashboard.get("ordered_cards") or []
    present = {dc.get("card_id") for dc in current}
    new = [(card, card_id) for card, card_id in cards if card_id not in present]
    if new:
        positions = _layout(current, [(card.size_x, card.size_y) for card, _ in new])
        kept = [{key: dc[key] for key in _DASHCARD_KEYS if key in dc} for dc in current]
        added = [{"id": -(index + 1), "card_id": card_id, "row": row, "col": col, "size_x": card.size_x,
                  "size_y": card.size_y, "parameter_mappings": [], "visualization_settings": {}, "series": []}
                 for index, ((card, card_id), (row, col)) in enumerate(zip(new, positions, strict=True))]
        client.put(f"/api/dashboard/{dashboard_id}", {"dashcards": kept + added, "tabs": dashboard.get("tabs") or []})
        created["dashcards"] += len(added)
    return {"name": spec.name, "id": dashboard_id, "action": action,
            "cards": [card.name for card, _ in cards], "cards_added": [card.name for card, _ in new]}


# ------------------------------------------------------------------------------ entry points


def setup_metabase(
    metabase_url: str,
    *,
    admin_email: str,
    admin_password: str,
    warehouse: Mapping[str, Any],
    dbt_manifest_path: Path | None,
    dashboards_spec: Sequence[DashboardSpec] = DASHBOARDS,
    relations_exist: Callable[[Iterable[str]], set[str]] | None = None,
    database_name: str = DATABASE_NAME,
    site_name: str = SITE_NAME,
    ready_timeout: float = 300.0,
    sync_timeout: float = 180.0,
    poll_interval: float = 2.0,
    http_timeout: float = 30.0,
) -> dict:
    """Provision Metabase (see the module docstring); return a report of what exists, what was created
    or updated, and which dashboards were skipped and why."""
    missing = [key for key in ("host", "port", "dbname", "user", "password") if not warehouse.get(key)]
    if missing:
        raise MetabaseError(f"warehouse connection lacks {', '.join(missing)}")
    if warehouse["user"] != security.BI_READER:
        raise MetabaseError(f"Metabase must read the warehouse as {security.BI_READER!r} (published schemas only), "
                            f"not as {warehouse['user']!r}")
    relations_exist = relations_exist or warehouse_relations(warehouse)
    client = MetabaseClient(metabase_url, timeout=http_timeout, secrets=(admin_password, str(warehouse["password"])))
    created: Counter = Counter()
    updated: Counter = Counter()

    _wait_until_ready(client, ready_timeout, poll_interval)
    session = _authenticate(client, email=admin_email, password=admin_password, site_name=site_name)
    database = _ensure_database(client, database_name, warehouse, created)

    docs: dict[tuple[str, str], TableDoc] = {}
    manifest_note = None
    if dbt_manifest_path is not None and Path(dbt_manifest_path).exists():
        docs = load_dbt_descriptions(Path(dbt_manifest_path))
    else:
        manifest_note = (f"no dbt manifest at {dbt_manifest_path}: descriptions are pushed after the first "
                         "night has run dbt" if dbt_manifest_path else "no dbt manifest given")

    candidates = {".".join(key) for key in docs} | {r for spec in dashboards_spec for r in spec.relations}
    existing_relations = relations_exist(candidates)
    bi_relations = {r for r in existing_relations if r.split(".", 1)[0] in BI_SCHEMAS}

    sync = _sync(client, database["id"], bi_relations, sync_timeout, poll_interval)
    tables = sync.pop("_tables")
    descriptions = _push_descriptions(client, tables, docs, updated) if docs else {"skipped": manifest_note}

    collection_id = _ensure_collection(client, created)
    existing_cards = _collection_items(client, collection_id, "card")
    existing_dashboards = _collection_items(client, collection_id, "dashboard")
    dashboards: list[dict] = []
    skipped: list[dict] = []
    for spec in dashboards_spec:
        ready = [card for card in spec.cards if set(card.relations) <= existing_relations]
        waiting = {card.name: sorted(set(card.relations) - existing_relations)
                   for card in spec.cards if card not in ready}
        if not ready:
            absent = sorted({r for relations in waiting.values() for r in relations})
            skipped.append({"name": spec.name,
                            "reason": f"relations not in the warehouse yet: {', '.join(absent)}",
                            "missing_relations": absent})
            continue
        cards = [(card, _ensure_card(client, card, existing_cards, database["id"], collection_id, created, updated))
                 for card in ready]
        result = _ensure_dashboard(client, spec, cards, existing_dashboards, collection_id, created)
        result["cards_waiting"] = waiting
        dashboards.append(result)

    return {
        "metabase_url": client.base_url,
        "session": session,
        "database": database,
        "sync": sync,
        "descriptions": descriptions,
        "collection_id": collection_id,
        "dashboards": dashboards,
        "skipped_dashboards": skipped,
        "created": dict(created),
        "updated": dict(updated),
    }


def format_report(report: dict) -> str:
    lines = [
        f"Metabase {report['metabase_url']}: {report['session']}",
        (f"  database {report['database']['name']!r} (id {report['database']['id']}) {report['database']['action']}, "
         f"connected as {report['database']['user']}"),
        f"  schema sync triggered: {report['sync']['tables']} tables visible",
    ]
    if report["sync"]["not_synced_yet"]:
        lines[-1] += f"; not synced yet: {', '.join(report['sync']['not_synced_yet'])}"
    descriptions = report["descriptions"]
    if "skipped" in descriptions:
        lines.append(f"  descriptions: {descriptions['skipped']}")
    else:
        updated = report["updated"]
        lines.append(f"  descriptions from dbt: {descriptions['tables_documented']} tables; updated "
                     f"{updated.get('table_descriptions', 0)} table and {updated.get('field_descriptions', 0)} "
                     f"column descriptions")
        if descriptions["tables_not_in_metabase"]:
            lines.append(f"    not in Metabase yet: {', '.join(descriptions['tables_not_in_metabase'])}")
    for dashboard in report["dashboards"]:
        added = f", added {len(dashboard['cards_added'])} cards" if dashboard["cards_added"] else ""
        lines.append(f"  dashboard {dashboard['name']!r} (id {dashboard['id']}) {dashboard['action']}: "
                     f"{len(dashboard['cards'])} cards{added}")
        for card, relations in dashboard["cards_waiting"].items():
            lines.append(f"    card {card!r} waits for {', '.join(relations)}")
    for skipped in report["skipped_dashboards"]:
        lines.append(f"  dashboard {skipped['name']!r} skipped: {skipped['reason']}")
    created = ", ".join(f"{count} {kind}" for kind, count in sorted(report["created"].items())) or "nothing"
    lines.append(f"  created: {created}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `hospital-ops metabase setup` (defaults from the environment, as in docker-compose.yml)."""
    env = os.environ
    parser.add_argument("--url", default=env.get("METABASE_URL", "http://localhost:3000"),
                        help="Metabase base URL (METABASE_URL; default http://localhost:3000)")
    parser.add_argument("--manifest", type=Path, default=None,
                        help="dbt manifest.json (METABASE_DBT_MANIFEST; default <var>/dbt/target/manifest.json)")
    parser.add_argument("--sync-timeout", type=float, default=float(env.get("METABASE_SYNC_TIMEOUT", "180")),
                        help="seconds to wait for Metabase's schema sync (default 180)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    """`hospital-ops metabase setup`: credentials come from the environment only (never the command line):
    METABASE_ADMIN_EMAIL, METABASE_ADMIN_PASSWORD, METABASE_WAREHOUSE_PASSWORD (bi_reader's), and
    METABASE_WAREHOUSE_HOST/PORT/DB/USER (defaults warehouse, 5432, hospital_ops, bi_reader) as Metabase
    reaches the warehouse."""
    from hospital_ops.config import settings

    env = os.environ
    required = [name for name in ("METABASE_ADMIN_EMAIL", "METABASE_ADMIN_PASSWORD", "METABASE_WAREHOUSE_PASSWORD")
                if not env.get(name)]
    if required:
        print(f"error: set {', '.join(required)} (see .env.example)", file=sys.stderr)
        return 2
    manifest = args.manifest or Path(env.get("METABASE_DBT_MANIFEST") or
                                     settings().var_dir / "dbt" / "target" / "manifest.json")
    warehouse = {
        "host": env.get("METABASE_WAREHOUSE_HOST", "warehouse"),
        "port": int(env.get("METABASE_WAREHOUSE_PORT", "5432")),
        "dbname": env.get("METABASE_WAREHOUSE_DB", WAREHOUSE_DB),
        "user": env.get("METABASE_WAREHOUSE_USER", security.BI_READER),
        "password": env["METABASE_WAREHOUSE_PASSWORD"],
    }
    try:
        report = setup_metabase(args.url, admin_email=env["METABASE_ADMIN_EMAIL"],
                                admin_password=env["METABASE_ADMIN_PASSWORD"], warehouse=warehouse,
                                dbt_manifest_path=manifest, sync_timeout=args.sync_timeout)
    except MetabaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2, ensure_ascii=False, default=str) if args.json else format_report(report))
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m hospital_ops.metabase setup` (what the metabase-init service runs)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m hospital_ops.metabase", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["setup"])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
