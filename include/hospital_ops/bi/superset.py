"""Apache Superset as the locally runnable BI server (`hospital-ops bi`, `make bi`).

Superset pins older pandas and SQLAlchemy than the pipeline, so it lives in its own virtualenv,
`<var>/superset/venv`, installed on first use from the package index with the pinned working set in
superset-constraints.txt beside this module (6.1.0 needs `rich` and `cachetools`, which its wheel does not
declare, and Flask-Caching 2.3.1: 2.5 breaks its app start). Then, each step skipped when already done:

1. initialise its metadata database on SQLite (`<var>/superset/superset.db`): `superset db upgrade`,
   an admin user (password created once in `<var>/secrets/superset.json`), `superset init`;
2. provision from the dashboard spec (dashboards.yml): the warehouse connected as `bi_reader`
   (its URL from hospital_ops.warehouse.role_url, so a role's password reaches Superset), one dataset
   per rpt_ model with the spec's Chinese and English column labels, the charts and the dashboards.
   They are written as a Superset import bundle (the YAML format of Superset's own examples) with
   UUIDs derived from the spec's keys, and imported with overwrite: a rerun updates, never duplicates;
3. serve on 127.0.0.1 (`superset run`), printing the URL and the login.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import secrets
import subprocess
import sys
import time
import uuid
import zipfile
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import yaml

from hospital_ops.bi import spec as bi_spec

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

log = logging.getLogger(__name__)

SUPERSET_VERSION = "6.1.0"
CONSTRAINTS_FILE = Path(__file__).with_name("superset-constraints.txt")
# what `pip install` is asked for; the constraints file pins these and everything they pull in
REQUIREMENTS = (f"apache-superset=={SUPERSET_VERSION}", "rich", "cachetools", "Flask-Caching", "psycopg2-binary")
ADMIN_USER = "admin"
DEFAULT_PORT = 8088
DATABASE_NAME = "医院运营数据仓库 Hospital operations warehouse"
NAMESPACE = uuid.UUID("5b0e7c1e-2f7a-4c57-9a57-6f1d1e0c0b15")  # UUIDs of the bundle: uuid5(NAMESPACE, key)
TIME_FORMAT = "%Y-%m-%d"


class SupersetError(RuntimeError):
    pass


@dataclass(frozen=True)
class Paths:
    root: Path
    venv_dir: Path | None = None  # default <root>/venv; one installation can serve several homes

    @property
    def venv(self) -> Path:
        return self.venv_dir or self.root / "venv"

    @property
    def superset(self) -> Path:
        return self.venv / "bin" / "superset"

    @property
    def config(self) -> Path:
        return self.root / "superset_config.py"

    @property
    def metadata_db(self) -> Path:
        return self.root / "superset.db"

    @property
    def install_stamp(self) -> Path:
        return self.venv / ".hospital_ops_installed"

    @property
    def init_stamp(self) -> Path:
        return self.root / ".initialised"

    @property
    def bundle(self) -> Path:
        return self.root / "dashboards_bundle.zip"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"


def paths() -> Paths:
    from hospital_ops.config import settings

    return Paths(settings().var_dir / "superset")


def _key(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "/".join(parts)))


# ------------------------------------------------------------------------------ install and initialise


def _constraints_digest() -> str:
    return hashlib.sha256(CONSTRAINTS_FILE.read_bytes()).hexdigest()[:16]


def ensure_installed(p: Paths, *, progress: Callable[[str], None] = print) -> bool:
    """Create the venv and install the pinned set unless it is there already; True when it installed."""
    if p.superset.exists() and p.install_stamp.exists() and p.install_stamp.read_text() == _constraints_digest():
        return False
    started = time.monotonic()
    progress(f"installing apache-superset {SUPERSET_VERSION} into {p.venv} (first use only, a few minutes) …")
    p.root.mkdir(parents=True, exist_ok=True)
    if not (p.venv / "bin" / "python").exists():
        base = getattr(sys, "_base_executable", sys.executable)
        _run([base, "-m", "venv", str(p.venv)], "create Superset's virtualenv")
    pip = [str(p.venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    _run([*pip, "-c", str(CONSTRAINTS_FILE), *REQUIREMENTS], "pip install apache-superset")
    p.install_stamp.write_text(_constraints_digest())
    progress(f"Superset installed in {time.monotonic() - started:.0f} s")
    return True


def _run(command: list[str], what: str, env: dict[str, str] | None = None, timeout: float = 1800) -> str:
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise SupersetError(f"{what}: no answer after {timeout:.0f} s") from None
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        raise SupersetError(f"{what} failed (exit {done.returncode}):\n{tail}")
    return done.stdout


def credentials(p: Paths) -> dict[str, str]:
    """Superset's secret key and admin password, created once (git-ignored var/secrets/)."""
    from hospital_ops.config import settings

    path = settings().var_dir / "secrets" / "superset.json"
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    path.parent.mkdir(parents=True, exist_ok=True)
    values = {"secret_key": secrets.token_urlsafe(48), "admin_password": secrets.token_urlsafe(12)}
    path.write_text(json.dumps(values), encoding="utf-8")
    path.chmod(0o600)
    return values


def write_config(p: Paths) -> None:
    creds = credentials(p)
    p.root.mkdir(parents=True, exist_ok=True)
    p.config.write_text(
        "# Written by hospital_ops.bi.superset: Superset's configuration for the local BI server.\n"
        f"SECRET_KEY = {creds['secret_key']!r}\n"
        f"SQLALCHEMY_DATABASE_URI = {'sqlite:///' + str(p.metadata_db)!r}\n"
        "# served on 127.0.0.1 over plain HTTP for a person on this machine\n"
        "TALISMAN_ENABLED = False\n"
        "CONTENT_SECURITY_POLICY_WARNING = False\n"
        "SESSION_COOKIE_SECURE = False\n"
        "THUMBNAILS = False\n"
        "# every chart of a dashboard is drawn, not only those scrolled into view (screenshots, printing)\n"
        "FEATURE_FLAGS = {'DASHBOARD_NATIVE_FILTERS': True, 'DASHBOARD_VIRTUALIZATION': False}\n"
        "ROW_LIMIT = 5000\n"
        "BABEL_DEFAULT_LOCALE = 'en'\n",
        encoding="utf-8")
    p.config.chmod(0o600)


def superset_env(p: Paths) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(SUPERSET_CONFIG_PATH=str(p.config), FLASK_APP="superset", SUPERSET_HOME=str(p.root),
               PATH=f"{p.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    return env


def initialise(p: Paths, *, progress: Callable[[str], None] = print) -> bool:
    """Metadata database, admin user, roles and permissions, once per Superset version."""
    write_config(p)
    if p.init_stamp.exists() and p.init_stamp.read_text() == SUPERSET_VERSION and p.metadata_db.exists():
        return False
    started = time.monotonic()
    env = superset_env(p)
    superset = str(p.superset)
    _run([superset, "db", "upgrade"], "superset db upgrade", env)
    _run([superset, "fab", "create-admin", "--username", ADMIN_USER, "--firstname", "Hospital", "--lastname", "Ops",
          "--email", "bi-admin@hospital.invalid", "--password", credentials(p)["admin_password"]],
         "superset fab create-admin", env)
    _run([superset, "init"], "superset init", env)
    p.init_stamp.write_text(SUPERSET_VERSION)
    progress(f"Superset initialised on SQLite ({p.metadata_db}) in {time.monotonic() - started:.0f} s")
    return True


# ------------------------------------------------------------------------------ the import bundle


def _sqlalchemy_uri(warehouse_url: str) -> str:
    parts = urlsplit(warehouse_url)
    return parts._replace(scheme="postgresql+psycopg2").geturl()


def warehouse_columns(reader_url: str, models: list[str]) -> dict[str, list[tuple[str, str]]]:
    """rpt_ model → its (column, type) as the BI role sees it in the published schema."""
    import psycopg2

    with closing(psycopg2.connect(reader_url, connect_timeout=10)) as conn, conn.cursor() as cur:
        cur.execute(
            "select table_name, column_name, data_type from information_schema.columns "
            "where table_schema = %s and table_name = any(%s) order by table_name, ordinal_position",
            (bi_spec.BI_SCHEMA, models))
        found: dict[str, list[tuple[str, str]]] = {}
        for table, column, data_type in cur.fetchall():
            found.setdefault(table, []).append((column, data_type))
    missing = [m for m in models if m not in found]
    if missing:
        raise SupersetError(f"not readable in schema {bi_spec.BI_SCHEMA} as the BI role: {', '.join(missing)} "
                            "(run a night first: `hospital-ops-sim demo` or `hospital-ops run-night DATE`)")
    return found


def _number_format(label: bi_spec.Label | None) -> str:
    if label is not None and label.is_percent:
        return ".1%"
    return ",.2~f"


def _dataset(model: str, columns: list[tuple[str, str]], spec: bi_spec.Spec, database_uuid: str) -> dict:
    return {
        "table_name": model,
        "main_dttm_col": "month" if any(c == "month" for c, _ in columns) else None,
        "description": f"dbt model {model} (schema {bi_spec.BI_SCHEMA})",
        "default_endpoint": None, "offset": 0, "cache_timeout": None,
        "schema": bi_spec.BI_SCHEMA, "catalog": None, "sql": None, "params": None, "template_params": None,
        "filter_select_enabled": True, "fetch_values_predicate": None, "extra": None, "normalize_columns": False,
        "always_filter_main_dttm": False,
        "uuid": _key("dataset", model),
        "metrics": [{"metric_name": "count", "verbose_name": "行数 Rows", "metric_type": "count",
                     "expression": "COUNT(*)", "description": None, "d3format": None, "extra": None,
                     "warning_text": None}],
        "columns": [{
            "column_name": column,
            "verbose_name": spec.labels[column].text if column in spec.labels else None,
            "is_dttm": data_type in ("date", "timestamp without time zone", "timestamp with time zone"),
            "is_active": True, "type": data_type.upper(), "groupby": True, "filterable": True,
            "expression": "", "description": None, "python_date_format": None, "extra": None,
        } for column, data_type in columns],
        "version": "1.0.0",
        "database_uuid": database_uuid,
    }


def _metric(column: str, spec: bi_spec.Spec) -> dict:
    # an rpt_ model has one row per series value and month, so MAX is the row's own figure
    return {"expressionType": "SIMPLE", "column": {"column_name": column}, "aggregate": "MAX",
            "label": spec.label(column).text, "hasCustomLabel": True, "optionName": f"metric_{column}"}


def chart_params(chart: bi_spec.Chart, spec: bi_spec.Spec) -> dict[str, Any]:
    common = {"datasource": f"{_key('dataset', chart.model)}__table", "adhoc_filters": [], "extra_form_data": {},
              "dashboards": []}
    if chart.type == "table":
        return common | {
            "viz_type": "table", "query_mode": "raw", "all_columns": list(chart.columns),
            "order_by_cols": [json.dumps([column, ascending]) for column, ascending in chart.order_by],
            "row_limit": 1000, "server_page_length": 10, "include_search": True, "show_cell_bars": False,
            "table_timestamp_format": TIME_FORMAT, "allow_rearrange_columns": False,
            "column_config": {column: {"d3NumberFormat": _number_format(spec.labels.get(column))}
                              for column in chart.columns
                              if spec.labels.get(column) and spec.labels[column].unit},
        }
    if chart.type == "big_number":
        (column,) = chart.metrics
        return common | {"viz_type": "big_number_total", "metric": _metric(column, spec),
                         "y_axis_format": _number_format(spec.label(column)),
                         "subheader": spec.label(column).text}
    first = spec.label(chart.metrics[0])
    temporal = chart.x == "month"
    params = common | {
        "viz_type": "echarts_timeseries_line" if chart.type == "line" else "echarts_timeseries_bar",
        "x_axis": chart.x, "metrics": [_metric(column, spec) for column in chart.metrics],
        "groupby": [chart.series] if chart.series else [], "row_limit": 10000, "truncate_metric": True,
        "order_desc": True, "show_legend": True, "legendType": "scroll", "legendOrientation": "top",
        "rich_tooltip": True, "y_axis_format": _number_format(first), "x_axis_time_format": "%Y-%m",
        "tooltipTimeFormat": "%Y-%m", "x_axis_sort_asc": True, "markerEnabled": True, "markerSize": 6,
        "y_axis_title": spec.label(chart.metrics[0]).text if len(chart.metrics) == 1 else "",
        "y_axis_title_position": "Left", "y_axis_title_margin": 30, "x_axis_title_margin": 15,
        "color_scheme": "supersetColors", "zoomable": False,
    }
    if temporal:
        params["time_grain_sqla"] = "P1M"
    if chart.type == "bar":
        params["orientation"] = "vertical"
    return params


def _chart(chart: bi_spec.Chart, dashboard: bi_spec.Dashboard, spec: bi_spec.Spec) -> dict:
    params = chart_params(chart, spec)
    return {"slice_name": chart.title, "description": f"{chart.relation}: {chart.title_en}",
            "certified_by": None, "certification_details": None, "viz_type": params["viz_type"],
            "params": params, "query_context": None, "cache_timeout": None,
            "uuid": _key("chart", chart.key), "version": "1.0.0", "dataset_uuid": _key("dataset", chart.model)}


def _native_filters(dashboard: bi_spec.Dashboard, spec: bi_spec.Spec) -> list[dict]:
    filters = []
    for column in dashboard.filters:
        target = next((chart.model for chart in dashboard.charts if column in chart.read_columns), None)
        if target is None:
            continue
        filters.append({
            "id": f"NATIVE_FILTER-{_key('filter', dashboard.key, column)[:8]}",
            "name": spec.label(column).text, "filterType": "filter_select", "type": "NATIVE_FILTER",
            "targets": [{"datasetUuid": _key("dataset", target), "column": {"name": column}}],
            "controlValues": {"enableEmptyFilter": False, "defaultToFirstItem": False, "multiSelect": True,
                              "searchAllOptions": False, "inverseSelection": False},
            "defaultDataMask": {"extraFormData": {}, "filterState": {}, "ownState": {}},
            "cascadeParentIds": [], "scope": {"rootPath": ["ROOT_ID"], "excluded": []},
            "chartsInScope": [], "tabsInScope": [], "description": "",
        })
    return filters


def _dashboard(dashboard: bi_spec.Dashboard, spec: bi_spec.Spec) -> dict:
    position: dict[str, Any] = {
        "DASHBOARD_VERSION_KEY": "v2",
        "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
        "GRID_ID": {"type": "GRID", "id": "GRID_ID", "children": [], "parents": ["ROOT_ID"]},
        "HEADER_ID": {"id": "HEADER_ID", "type": "HEADER", "meta": {"text": dashboard.title}},
    }
    rows: list[list[bi_spec.Chart]] = []
    for chart in dashboard.charts:
        if rows and sum(c.width for c in rows[-1]) + chart.width <= 12:
            rows[-1].append(chart)
        else:
            rows.append([chart])
    for index, row in enumerate(rows):
        row_id = f"ROW-{dashboard.key}-{index}"
        position["GRID_ID"]["children"].append(row_id)
        position[row_id] = {"type": "ROW", "id": row_id, "children": [],
                            "parents": ["ROOT_ID", "GRID_ID"], "meta": {"background": "BACKGROUND_TRANSPARENT"}}
        for chart in row:
            chart_id = f"CHART-{chart.key}"
            position[row_id]["children"].append(chart_id)
            position[chart_id] = {"type": "CHART", "id": chart_id, "children": [],
                                  "parents": ["ROOT_ID", "GRID_ID", row_id],
                                  "meta": {"width": chart.width, "height": 60 if chart.type == "table" else 50,
                                           "chartId": 0, "sliceName": chart.title,
                                           "uuid": _key("chart", chart.key)}}
    return {
        "dashboard_title": dashboard.title,
        "description": dashboard.description,
        "css": "", "slug": dashboard.key.replace("_", "-"), "certified_by": None, "certification_details": None,
        "published": True, "uuid": _key("dashboard", dashboard.key), "position": position,
        "metadata": {"native_filter_configuration": _native_filters(dashboard, spec),
                     "color_scheme": "supersetColors", "refresh_frequency": 0, "expanded_slices": {},
                     "label_colors": {}, "timed_refresh_immune_slices": [], "cross_filters_enabled": False,
                     "default_filters": "{}", "filter_scopes": {}, "chart_configuration": {}},
        "version": "1.0.0",
    }


def build_bundle(spec: bi_spec.Spec, reader_url: str, columns: dict[str, list[tuple[str, str]]]) -> bytes:
    """The spec as a Superset import bundle (zip of YAML files, as `superset export-dashboards` writes)."""
    database_uuid = _key("database", "warehouse")
    files: dict[str, dict] = {
        "metadata.yaml": {"version": "1.0.0", "type": "Dashboard", "timestamp": "2026-01-01T00:00:00+00:00"},
        "databases/hospital_ops_warehouse.yaml": {
            "database_name": DATABASE_NAME, "sqlalchemy_uri": _sqlalchemy_uri(reader_url), "cache_timeout": None,
            "expose_in_sqllab": True, "allow_run_async": False, "allow_ctas": False, "allow_cvas": False,
            "allow_dml": False, "allow_file_upload": False,
            "extra": {"allows_virtual_table_explore": False, "schemas_allowed_for_file_upload": []},
            "uuid": database_uuid, "version": "1.0.0"},
    }
    for model in spec.models:
        files[f"datasets/hospital_ops_warehouse/{model}.yaml"] = _dataset(model, columns[model], spec, database_uuid)
    for dashboard in spec.dashboards:
        for chart in dashboard.charts:
            files[f"charts/{chart.key}.yaml"] = _chart(chart, dashboard, spec)
        files[f"dashboards/{dashboard.key}.yaml"] = _dashboard(dashboard, spec)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, content in files.items():
            bundle.writestr(f"hospital_ops_dashboards/{name}",
                            yaml.safe_dump(content, allow_unicode=True, sort_keys=False))
    return buffer.getvalue()


def reader_url() -> str:
    """The warehouse as the BI role (the role's password, when it has one, comes with the URL)."""
    from hospital_ops import security, warehouse

    return warehouse.role_url(security.BI_READER)


def provision(p: Paths, spec: bi_spec.Spec, url: str, *, progress: Callable[[str], None] = print) -> dict:
    """Import the spec's database, datasets, charts and dashboards (overwriting by UUID)."""
    started = time.monotonic()
    columns = warehouse_columns(url, spec.models)
    p.bundle.write_bytes(build_bundle(spec, url, columns))
    p.bundle.chmod(0o600)  # it carries the BI role's URL
    try:
        _run([str(p.superset), "import-dashboards", "--path", str(p.bundle), "--username", ADMIN_USER],
             "superset import-dashboards", superset_env(p), timeout=600)
    finally:
        p.bundle.unlink(missing_ok=True)
    charts = sum(len(d.charts) for d in spec.dashboards)
    progress(f"provisioned {len(spec.dashboards)} dashboards, {charts} charts and {len(spec.models)} datasets "
             f"from {bi_spec.SPEC_FILE.name} in {time.monotonic() - started:.0f} s")
    return {"dashboards": len(spec.dashboards), "charts": charts, "datasets": len(spec.models)}


# ------------------------------------------------------------------------------ serve


def start_server(p: Paths, port: int, *, wait: float = 180.0) -> subprocess.Popen:
    """`superset run` on 127.0.0.1 in the background; returns once /health answers."""
    import requests

    p.log_dir.mkdir(parents=True, exist_ok=True)
    log_file = open(p.log_dir / "superset.log", "ab")  # noqa: SIM115 - the server's lifetime
    process = subprocess.Popen([str(p.superset), "run", "-h", "127.0.0.1", "-p", str(port), "--with-threads"],
                               env=superset_env(p), stdout=log_file, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SupersetError(f"superset run exited with {process.returncode}; see {p.log_dir / 'superset.log'}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                return process
        except requests.RequestException:
            pass
        time.sleep(1)
    process.terminate()
    raise SupersetError(f"Superset did not answer on port {port} within {wait:.0f} s")


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def prepare(p: Paths | None = None, *, url: str | None = None, progress: Callable[[str], None] = print) -> Paths:
    """Install, initialise and provision: everything but serving."""
    p = p or paths()
    ensure_installed(p, progress=progress)
    initialise(p, progress=progress)
    provision(p, bi_spec.load(), url or reader_url(), progress=progress)
    return p


def run(args: argparse.Namespace) -> int:
    """`hospital-ops bi [--port N] [--no-serve]`."""
    from hospital_ops import warehouse

    def progress(message: str) -> None:
        print(f"[hospital-ops bi {time.strftime('%H:%M:%S')}] {message}", flush=True)

    if not warehouse.is_external():
        warehouse.start()
    try:
        p = prepare(progress=progress)
    except SupersetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.no_serve:
        return 0
    process = start_server(p, args.port)
    password = credentials(p)["admin_password"]
    progress(f"Superset serves the dashboards at http://127.0.0.1:{args.port}/dashboard/list/ "
             f"— login {ADMIN_USER} / {password} (kept in {paths().root.parent / 'secrets' / 'superset.json'}); "
             "Ctrl-C stops it")
    try:
        process.wait()
    except KeyboardInterrupt:
        stop_server(process)
    return 0
