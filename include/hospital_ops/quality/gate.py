"""The nightly quality gate: Great Expectations (GX Core 1.x) between the marts build and scoring.

What is checked lives in the repository as plain JSON, not in code:

* ``expectations/suites/<suite>.json`` — GX 1.x ExpectationSuite documents (built-in expectations only);
* ``expectations/checkpoints/<checkpoint>.json`` — which suite validates which table, with an optional
  row filter (and ``former_names``: names the checkpoint had, under which ``dq`` rows were recorded).
  ``:business_date`` in a filter becomes the night's date, so a raw table is validated only for the
  batch landed tonight (``_batch_date = :business_date``)::

      {"name": "nightly_sources", "result_format": "SUMMARY",
       "validations": [{"suite": "raw.vendor__inspections", "table": "raw.vendor__inspections",
                        "row_filter": "_batch_date = :business_date"}, ...]}

A gate run builds an in-memory GX context (nothing is written into the repository), registers the
warehouse as a PostgreSQL data source (a filtered target is validated through a view of tonight's
rows, dropped after the run), loads the suites and runs one real GX ``Checkpoint`` over all
targets, then builds the HTML Data Docs of its results in ``var/data_docs``. Because the
context's results store is in memory, GX prunes older runs' pages when it rebuilds the index: the
site shows the latest gate run, and the history lives in ``dq.validation_results``, to which every
expectation result is appended (a rerun of the same run id and checkpoint replaces that run's rows).
A target table that does not exist is a failure of its own. If anything failed,
:class:`QualityGateFailed` is raised so the Airflow task fails and scoring does not run.

Great Expectations is imported only when a gate runs: importing this module (e.g. while Airflow parses
the DAG) stays cheap.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hospital_ops import batches, limits
from hospital_ops.config import settings
from hospital_ops.db import fetch_one

if TYPE_CHECKING:
    from types import ModuleType

    from great_expectations.checkpoint.checkpoint import CheckpointResult
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )
    from great_expectations.data_context import AbstractDataContext
    from great_expectations.datasource.fluent import PostgresDatasource
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
    from psycopg2.extensions import connection as PgConnection

log = logging.getLogger(__name__)

DQ_SCHEMA = "dq"
DQ_TABLE = "validation_results"
DATASOURCE_NAME = "warehouse"
DATA_DOCS_SITE = "hospital_ops"
# the Data Docs' scripts, stylesheets and fonts, served from the site itself (data_docs_assets/ASSETS.md)
DATA_DOCS_ASSETS = Path(__file__).with_name("data_docs_assets")
_CDN_ASSETS = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        "bootstrap-table-filter-control.min.js",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        "bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        "bootstrap-table-filter-control.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": "fontawesome/css/all.min.css",
    "https://cdn.jsdelivr.net/npm/vega@5": "vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        "bootstrap-datepicker.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        "bootstrap-datepicker.min.css",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css":
        "bootstrap-prefers-dark.css",
}
_GX_LOGO = re.compile(r'src="https://great-expectations-web-assets[^"]*"')
_REMOTE_RESOURCE = re.compile(r'(?:src|href)="(https?://[^"]+\.(?:js|css|png|svg|woff2?)[^"]*|https?://cdn[^"]*)"')
BATCH_VIEW_SCHEMA = "dq_gate"  # the night's batch views, while a gate runs; granted to no other role
TABLE_EXISTS = "table_exists"  # expectation_type recorded for the gate's own existence pre-check

_TABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")
_BUSINESS_DATE_PARAM = re.compile(r"(?<![:\w]):business_date\b")
_RESULT_FORMATS = ("BOOLEAN_ONLY", "BASIC", "SUMMARY", "COMPLETE")
_MAX_FAILURES_IN_MESSAGE = 50
_MAX_OBSERVED_CHARS = 300

_DQ_COLUMNS = ("run_id", "business_date", "checkpoint", "suite", "target_table", "expectation_type",
               "column_name", "kwargs", "success", "observed_value", "unexpected_count", "element_count")


class QualityGateError(RuntimeError):
    """The gate's own configuration (checkpoint or suite files) is unusable."""


class QualityGateFailed(RuntimeError):
    """At least one expectation failed (or a target table is missing); the message lists every failure."""

    def __init__(self, message: str, result: GateResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class GateResult:
    success: bool
    run_id: str
    business_date: date
    results: list[dict]  # one per expectation (plus one per missing target table)
    checkpoint: str = "nightly_sources"
    data_docs_index: Path | None = None
    seconds: float = 0.0

    @property
    def failures(self) -> list[dict]:
        return [r for r in self.results if not r["success"]]

    def summary(self) -> str:
        verdict = "passed" if self.success else "FAILED"
        return (f"quality gate {self.checkpoint!r} {verdict} for business date {self.business_date} "
                f"(run {self.run_id}): {len(self.failures)} of {len(self.results)} expectations failed")

    def failure_report(self) -> str:
        """One line per failure: suite, table, expectation, column, unexpected rows, observed value."""
        lines = [self.summary()]
        for r in self.failures[:_MAX_FAILURES_IN_MESSAGE]:
            lines.append("  - " + _describe_failure(r))
        if len(self.failures) > _MAX_FAILURES_IN_MESSAGE:
            lines.append(f"  … and {len(self.failures) - _MAX_FAILURES_IN_MESSAGE} more "
                         f"(see {DQ_SCHEMA}.{DQ_TABLE} where run_id = '{self.run_id}')")
        if self.data_docs_index:
            lines.append(f"  Data Docs: {self.data_docs_index}")
        return "\n".join(lines)


# ------------------------------------------------------------------------------ configuration


@dataclass(frozen=True)
class Validation:
    """One entry of a checkpoint definition: this suite validates this table (optionally filtered)."""

    suite: str
    table: str  # schema.table
    row_filter: str | None = None

    def rendered_filter(self, business_date: date) -> str | None:
        if not self.row_filter:
            return None
        return _BUSINESS_DATE_PARAM.sub(f"DATE '{business_date.isoformat()}'", self.row_filter)

    def query(self, business_date: date) -> str:
        schema, name = self.table.split(".")
        return f'select * from "{schema}"."{name}" where {self.rendered_filter(business_date)}'


@dataclass(frozen=True)
class CheckpointSpec:
    name: str
    validations: tuple[Validation, ...]
    result_format: str = "SUMMARY"
    description: str = ""
    former_names: tuple[str, ...] = ()  # earlier names of this checkpoint, in the dq history


def load_checkpoint(name: str, expectations_dir: Path | None = None) -> CheckpointSpec:
    """Read and check ``expectations/checkpoints/<name>.json``."""
    path = (expectations_dir or settings().expectations_dir) / "checkpoints" / f"{name}.json"
    if not path.is_file():
        raise QualityGateError(f"checkpoint definition {path} not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise QualityGateError(f"{path}: not valid JSON ({exc})") from exc
    if data.get("name") != name:
        raise QualityGateError(f"{path}: 'name' is {data.get('name')!r}, expected {name!r}")
    result_format = str(data.get("result_format", "SUMMARY")).upper()
    if result_format not in _RESULT_FORMATS:
        raise QualityGateError(f"{path}: result_format must be one of {_RESULT_FORMATS}")
    validations = []
    for i, entry in enumerate(data.get("validations") or []):
        unknown = set(entry) - {"suite", "table", "row_filter"}
        if unknown or not entry.get("suite") or not entry.get("table"):
            raise QualityGateError(f"{path}: validations[{i}] needs 'suite' and 'table' "
                                   f"(and optionally 'row_filter'), got {sorted(entry)}")
        if not _TABLE_NAME.match(entry["table"]):
            raise QualityGateError(f"{path}: validations[{i}].table {entry['table']!r} must be schema.table")
        validations.append(Validation(entry["suite"], entry["table"], entry.get("row_filter") or None))
    if not validations:
        raise QualityGateError(f"{path}: no validations")
    if len({(v.suite, v.table) for v in validations}) != len(validations):
        raise QualityGateError(f"{path}: the same suite validates the same table twice")
    former_names = data.get("former_names") or []
    if not isinstance(former_names, list) or not all(isinstance(n, str) and n and n != name for n in former_names):
        raise QualityGateError(f"{path}: former_names must be a list of the checkpoint's earlier names")
    return CheckpointSpec(name, tuple(validations), result_format, data.get("description", ""), tuple(former_names))


def load_suite(name: str, expectations_dir: Path | None = None) -> dict:
    """Read ``expectations/suites/<name>.json`` (a GX 1.x ExpectationSuite document) as a dict."""
    path = (expectations_dir or settings().expectations_dir) / "suites" / f"{name}.json"
    if not path.is_file():
        raise QualityGateError(f"expectation suite {path} not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise QualityGateError(f"{path}: not valid JSON ({exc})") from exc
    if data.get("name") != name:
        raise QualityGateError(f"{path}: suite 'name' is {data.get('name')!r}, expected {name!r}")
    if not data.get("expectations"):
        raise QualityGateError(f"{path}: suite has no expectations")
    return data


# -------------------------------------------------------------------------------------- run


def run_quality_gate(
    warehouse_url: str,
    *,
    run_id: str,
    business_date: date,
    checkpoint: str = "nightly_sources",
    data_docs_dir: Path | None = None,
    raise_on_failure: bool = True,
    expectations_dir: Path | None = None,
) -> GateResult:
    """Validate the checkpoint's targets, record every result in dq.validation_results, fail loudly."""
    import psycopg2

    started = time.monotonic()
    if isinstance(business_date, datetime):
        business_date = business_date.date()
    elif isinstance(business_date, str):
        business_date = date.fromisoformat(business_date)
    spec = load_checkpoint(checkpoint, expectations_dir)
    suites = {v.suite: load_suite(v.suite, expectations_dir) for v in spec.validations}
    docs_dir = Path(data_docs_dir or settings().data_docs_dir).resolve()

    conn = psycopg2.connect(_libpq_url(warehouse_url))
    try:
        missing = _missing_tables(conn, [v.table for v in spec.validations])
        by_validation: dict[Validation, list[dict]] = {
            v: [_missing_table_result(spec, v, business_date)] for v in spec.validations if v.table in missing
        }
        present = [v for v in spec.validations if v.table not in missing]
        docs_index = None
        if present:
            batch_views = _create_batch_views(conn, present, business_date)
            try:
                gx_results, docs_index = _run_gx_checkpoint(
                    warehouse_url, spec, present, suites, run_id=run_id, business_date=business_date,
                    docs_dir=docs_dir, batch_views=batch_views)
            finally:
                _drop_batch_views(conn, batch_views)
            by_validation.update(gx_results)
        results = [r for v in spec.validations for r in by_validation.get(v, [])]
        _record(conn, results, run_id=run_id, business_date=business_date, checkpoint=spec.name,
                former_names=spec.former_names)
        # a verdict on tonight's batch of each raw table: a rejected batch is held out of publication
        batches.record_gate_verdicts(conn, results, [v.table for v in present if v.row_filter],
                                     run_id=run_id, business_date=business_date)
    finally:
        conn.close()

    outcome = GateResult(success=all(r["success"] for r in results), run_id=run_id, business_date=business_date,
                         results=results, checkpoint=spec.name, data_docs_index=docs_index,
                         seconds=round(time.monotonic() - started, 2))
    if outcome.success:
        log.info("%s in %.1f s; Data Docs: %s", outcome.summary(), outcome.seconds, docs_index)
    else:
        log.error("%s", outcome.failure_report())
        if raise_on_failure:
            raise QualityGateFailed(outcome.failure_report(), outcome)
    return outcome


def _create_batch_views(conn: PgConnection, validations: Sequence[Validation], business_date: date) -> dict[Validation, str]:
    """A view per row-filtered validation (tonight's batch of a raw table), in a schema no other role
    can read; GX validates it as a table.

    Not a GX query asset: GX reads a query asset's columns by running the whole query and fetching
    every row (`column_reflection_fallback` has no LIMIT for a text query), which held a catch-up
    night's 7.5 million charge rows in memory, three times over. A view's columns come from the
    catalog, and PostgreSQL inlines the view, so the batch filter still uses the _batch_date index."""
    views: dict[Validation, str] = {}
    with conn.cursor() as cur:
        cur.execute(f"create schema if not exists {BATCH_VIEW_SCHEMA}")
        for number, v in enumerate(validations):
            if not v.row_filter:
                continue
            name = f"{BATCH_VIEW_SCHEMA}.b{number}__{v.table.replace('.', '__')}"[:63]
            cur.execute(f"create or replace view {name} as {v.query(business_date)}")
            views[v] = name
    conn.commit()
    return views


def _drop_batch_views(conn: PgConnection, views: dict[Validation, str]) -> None:
    if conn.closed:
        return
    conn.rollback()
    with conn.cursor() as cur:
        for name in views.values():
            cur.execute(f"drop view if exists {name}")
    conn.commit()


def _run_gx_checkpoint(warehouse_url: str, spec: CheckpointSpec, validations: Sequence[Validation],
                       suite_docs: dict[str, dict], *, run_id: str, business_date: date,
                       docs_dir: Path, batch_views: dict[Validation, str]) -> tuple[dict[Validation, list[dict]], Path | None]:
    gx = _import_gx()
    from great_expectations.core.run_identifier import RunIdentifier

    context = _ephemeral_context(docs_dir)
    datasource = context.data_sources.add_postgres(  # type: ignore[call-arg]  # the stub lacks SQL `kwargs`
        DATASOURCE_NAME, connection_string=warehouse_url,
        kwargs={"connect_args": {
            "application_name": f"hospital_ops quality gate {spec.name}",
            # GX's uniqueness and pair checks join a batch to its own grouped rows. Tonight's batch of
            # a large table is a value the planner's statistics have not seen yet, so it estimates a
            # row or two and picks a nested loop: quadratic in the batch (7 s for 10,000 charges).
            # Hash joins cost little at any size.
            "options": f"-c enable_nestloop=off {limits.session_options()}",
        }},
    )
    try:
        suites = {name: context.suites.add(_build_suite(doc)) for name, doc in suite_docs.items()
                  if any(v.suite == name for v in validations)}
        definitions = []
        by_definition_id: dict[str, Validation] = {}
        table_counts: dict[str, int] = {}
        for v in validations:
            table_counts[v.table] = table_counts.get(v.table, 0) + 1
        for i, v in enumerate(validations):
            asset_name = v.table if table_counts[v.table] == 1 else f"{v.table}[{i}]"
            schema, table = batch_views.get(v, v.table).split(".")
            asset = datasource.add_table_asset(asset_name, table_name=table, schema_name=schema)
            batch_definition = asset.add_batch_definition_whole_table("batch")
            definition = context.validation_definitions.add(
                gx.ValidationDefinition(name=f"{v.suite} @ {asset_name}", data=batch_definition,
                                        suite=suites[v.suite]))
            definitions.append(definition)
            by_definition_id[str(definition.id)] = v
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=spec.name,
            validation_definitions=definitions,
            result_format=spec.result_format,
        ))
        # the business date leads the run's name: the Data Docs index lists every night by the date it validated
        gx_run_id = RunIdentifier(run_name=_safe_run_name(f"{business_date.isoformat()}__{run_id}"),
                                  run_time=datetime.now(UTC))
        checkpoint_result = checkpoint.run(run_id=gx_run_id)
        _redact_sensitive_values(context, checkpoint_result)
        _build_data_docs(context, checkpoint_result)
    finally:
        _dispose(datasource)

    results: dict[Validation, list[dict]] = {}
    for validation_result in checkpoint_result.run_results.values():
        v = by_definition_id[str(validation_result.meta["validation_id"])]
        order = {e.id: n for n, e in enumerate(suites[v.suite].expectations)}
        ordered = sorted(validation_result.results,
                         key=lambda r: order.get(_config(r).id, len(order)))
        rows = [_result_row(spec, v, business_date, r) for r in ordered]
        if (not validation_result.success and all(row["success"] for row in rows)) or len(rows) < len(order):
            # the validation failed without any expectation failing, or some expectations were not
            # evaluated: either way the gate must not pass on what it did not check
            rows.append(_validation_error_result(spec, v, business_date, validation_result))
        results[v] = rows
    for v in validations:
        if v not in results:  # never happens with a healthy GX, but a silent gap must not pass
            results[v] = [_validation_error_result(spec, v, business_date, None)]

    _prune_empty_dirs(docs_dir / "validations")
    _prune_empty_dirs(docs_dir / "expectations")
    _serve_assets_locally(docs_dir)
    docs_index = docs_dir / "index.html"
    return results, docs_index if docs_index.exists() else None


# what GX reports about a column's values, beyond counts and shares
_VALUE_KEYS = ("partial_unexpected_list", "partial_unexpected_counts", "partial_unexpected_index_list",
               "unexpected_list", "unexpected_index_list", "unexpected_index_query", "unexpected_rows", "details")
REDACTED = "[not kept: personal or free-text column]"


def sensitive_columns() -> frozenset[str]:
    """Columns whose values the gate never keeps: personal identifiers (even as pseudonyms) and free
    text a person typed, by their raw names in every source spec."""
    from hospital_ops.sources import LANDED_SOURCES as SOURCES

    return frozenset(column.raw_name for source in SOURCES.values() for entity in source.entities
                     for column in entity.columns if column.pii or column.free_text)


def _redact_sensitive_values(context: AbstractDataContext, checkpoint_result: CheckpointResult) -> None:
    """Drop the values GX kept for expectations on sensitive columns: the unexpected values and
    partial lists (SUMMARY keeps up to 20), and an observed value that is not a number. Counts and
    shares stay, so a failure still says how many rows. Done on the results in memory and written
    back to the (in-memory) validation results store before the Data Docs are built from it, so
    neither `dq.validation_results` nor the Data Docs ever see them. The checkpoint's result format
    applies to every expectation at once (it overrides an expectation's own), hence this step."""
    sensitive = sensitive_columns()
    for identifier, validation_result in checkpoint_result.run_results.items():
        changed = False
        for expectation_result in validation_result.results:
            kwargs = _config(expectation_result).kwargs
            columns = {str(kwargs.get(k)) for k in ("column", "column_A", "column_B") if kwargs.get(k)}
            columns |= {str(c) for c in kwargs.get("column_list") or ()}
            if not columns & sensitive or not expectation_result.result:
                continue
            result = expectation_result.result
            for key in _VALUE_KEYS:
                if key in result:
                    result[key] = [] if isinstance(result[key], list) else REDACTED
            observed = result.get("observed_value")
            if observed is not None and not isinstance(observed, (int, float)):
                result["observed_value"] = REDACTED
            changed = True
        if changed:
            context.validation_results_store.set(identifier, validation_result)


def _serve_assets_locally(docs_dir: Path) -> None:
    """Point every Data Docs page at the scripts, stylesheets and fonts copied into the site
    (static/vendor/), so the pages work on an intranet without the internet. GX has no setting for
    where its page templates load their libraries from, hence the rewrite of the built pages."""
    import shutil

    vendor = docs_dir / "static" / "vendor"
    shutil.copytree(DATA_DOCS_ASSETS, vendor, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.md"))
    for page in docs_dir.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        rewritten = html
        prefix = Path(*([".."] * (len(page.relative_to(docs_dir).parts) - 1)), "static", "vendor").as_posix()
        for url, name in _CDN_ASSETS.items():
            rewritten = rewritten.replace(f'"{url}"', f'"{prefix}/{name}"')
        rewritten = _GX_LOGO.sub('src=""', rewritten)
        if rewritten != html:
            page.write_text(rewritten, encoding="utf-8")
        remote = _REMOTE_RESOURCE.findall(rewritten)
        if remote:  # a GX upgrade brought a library this list does not know: say so rather than serve it half
            log.warning("Data Docs page %s still loads %s from the internet", page, ", ".join(sorted(set(remote))))


def _build_data_docs(context: AbstractDataContext, checkpoint_result: CheckpointResult) -> None:
    """The run's validation pages, its suites' pages and the index, in one site build.

    GX's own ``UpdateDataDocsAction`` rebuilds the site index once per validation, and every build
    compiles the page templates afresh: with some forty validations that took about ten seconds a
    night, against about one for a single build of the same pages."""
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    started = time.monotonic()
    suites = sorted({result.suite_name for result in checkpoint_result.run_results.values()})
    # one call builds the results' and the suites' pages; GX's annotation allows a list of one kind only
    context.build_data_docs(site_names=[DATA_DOCS_SITE], resource_identifiers=[
        *checkpoint_result.run_results, *(ExpectationSuiteIdentifier(name=name) for name in suites)])  # type: ignore[arg-type]
    log.info("Data Docs built in %.1f s", time.monotonic() - started)


def _import_gx() -> ModuleType:
    """Import GX with its INFO chatter turned down (unless someone configured its loggers)."""
    for name in ("great_expectations", "posthog"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)
    import great_expectations as gx

    return gx


def _ephemeral_context(docs_dir: Path) -> AbstractDataContext:
    gx = _import_gx()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    # validation results are kept on disk beside the site, so every night's pages stay in the Data Docs and
    # its index lists all of them (an in-memory store knows tonight's only, and GX then drops older pages)
    defaults = InMemoryStoreBackendDefaults(init_temp_docs_sites=False)
    stores = dict(defaults.stores)
    stores[defaults.validation_results_store_name] = {
        "class_name": "ValidationResultsStore",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                          "base_directory": str(docs_dir.parent / f"{docs_dir.name}_results")},
    }
    config = DataContextConfig(
        store_backend_defaults=defaults,
        stores=stores,
        data_docs_sites={
            DATA_DOCS_SITE: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _build_suite(document: dict) -> ExpectationSuite:
    """A GX ExpectationSuite from its JSON document; refuses to drop an invalid expectation silently."""
    from great_expectations.core.expectation_suite import ExpectationSuite, expectationSuiteSchema

    try:
        suite = ExpectationSuite(**expectationSuiteSchema.load(document))
    except Exception as exc:  # marshmallow / pydantic validation errors
        raise QualityGateError(f"suite {document.get('name')!r} is not a valid GX suite: {exc}") from exc
    # ExpectationSuite() logs and skips an expectation whose configuration is invalid (unknown type,
    # missing kwargs): a gate that silently checks less than the file says is worse than none.
    if len(suite.expectations) != len(document["expectations"]):
        known = {e.expectation_type for e in suite.expectations}
        rejected = [e.get("type") for e in document["expectations"] if e.get("type") not in known]
        raise QualityGateError(f"suite {suite.name!r}: {len(document['expectations']) - len(suite.expectations)} "
                               f"expectation(s) rejected by GX as invalid (types: {rejected or 'see log'})")
    return suite


def _prune_empty_dirs(root: Path) -> None:
    """GX removes the pages of runs its (in-memory) results store does not know, leaving their folders."""
    if not root.is_dir():
        return
    for path in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            path.rmdir()  # succeeds only when empty


def _dispose(datasource: PostgresDatasource) -> None:
    """Close GX's pooled connections now instead of whenever the engine is garbage collected."""
    try:
        datasource.get_execution_engine().engine.dispose()
        datasource.get_engine().dispose()
    except Exception:  # best effort
        log.debug("could not dispose the GX engine", exc_info=True)


# ---------------------------------------------------------------------------------- results


def _config(expectation_result: ExpectationValidationResult) -> ExpectationConfiguration:
    """The configuration GX attaches to every result of a suite's expectation."""
    if expectation_result.expectation_config is None:
        raise QualityGateError(f"GX returned a result without its expectation: {expectation_result}")
    return expectation_result.expectation_config


def _result_row(spec: CheckpointSpec, v: Validation, business_date: date,
                expectation_result: ExpectationValidationResult) -> dict:
    config = _config(expectation_result)
    kwargs = {k: v_ for k, v_ in config.kwargs.items() if k not in ("batch_id", "result_format")}
    result = dict(expectation_result.result or {})
    exception = _exception_message(expectation_result.exception_info)
    return {
        "checkpoint": spec.name,
        "suite": v.suite,
        "target_table": v.table,
        "row_filter": v.rendered_filter(business_date),
        "expectation_type": config.type,
        "column_name": _column_name(kwargs),
        "kwargs": _jsonable(kwargs),
        "success": bool(expectation_result.success) and exception is None,
        "observed_value": _observed_value(result, exception),
        "unexpected_count": result.get("unexpected_count"),
        "element_count": result.get("element_count"),
        "exception": exception,
    }


def _missing_table_result(spec: CheckpointSpec, v: Validation, business_date: date) -> dict:
    return {
        "checkpoint": spec.name,
        "suite": v.suite,
        "target_table": v.table,
        "row_filter": v.rendered_filter(business_date),
        "expectation_type": TABLE_EXISTS,
        "column_name": None,
        "kwargs": {"table": v.table},
        "success": False,
        "observed_value": {"exists": False},
        "unexpected_count": None,
        "element_count": None,
        "exception": f"target table {v.table} does not exist (suite {v.suite} could not run)",
    }


def _validation_error_result(spec: CheckpointSpec, v: Validation, business_date: date,
                             validation_result: ExpectationSuiteValidationResult | None) -> dict:
    detail = "GX returned no result for this validation" if validation_result is None else (
        "validation incomplete or failed without a failing expectation: "
        + json.dumps(_jsonable(validation_result.statistics), default=str))
    return {
        "checkpoint": spec.name,
        "suite": v.suite,
        "target_table": v.table,
        "row_filter": v.rendered_filter(business_date),
        "expectation_type": "validation_ran",
        "column_name": None,
        "kwargs": {"table": v.table},
        "success": False,
        "observed_value": None,
        "unexpected_count": None,
        "element_count": None,
        "exception": detail,
    }


def _column_name(kwargs: dict) -> str | None:
    if "column" in kwargs:
        return str(kwargs["column"])
    if "column_A" in kwargs:
        return f"{kwargs['column_A']}, {kwargs['column_B']}"
    if "column_list" in kwargs:
        return ", ".join(map(str, kwargs["column_list"]))
    return None


def _observed_value(result: dict, exception: str | None) -> Any:
    if exception:
        return {"exception": exception[:4000]}
    if "observed_value" in result:
        return _jsonable(result["observed_value"])
    if result.get("unexpected_count"):
        partial = result.get("partial_unexpected_list", [])
        return _jsonable({
            "unexpected_percent": result.get("unexpected_percent"),
            "partial_unexpected_list": partial if isinstance(partial, list) else [],
        })
    return None


def _exception_message(info: Any) -> str | None:
    """GX reports exceptions either flat or keyed by the metric that raised: accept both."""
    if not info:
        return None
    if "raised_exception" in info:
        return (info.get("exception_message") or "exception raised") if info["raised_exception"] else None
    messages = [str(d.get("exception_message") or "exception raised") for d in info.values()
                if isinstance(d, dict) and d.get("raised_exception")]
    return "; ".join(dict.fromkeys(messages)) or None


def _first_line(text: str) -> str:
    """The gist of an exception (SQLAlchemy appends the SQL and a help link on later lines)."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), text)
    return line if len(line) <= _MAX_OBSERVED_CHARS else line[:_MAX_OBSERVED_CHARS] + "…"


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _describe_failure(r: dict) -> str:
    where = r["target_table"] + (f" where {r['row_filter']}" if r.get("row_filter") else "")
    parts = [f"suite={r['suite']}", f"table={where}", f"expectation={r['expectation_type']}"]
    if r.get("column_name"):
        parts.append(f"column={r['column_name']}")
    if r.get("exception"):
        parts.append(f"error={_first_line(r['exception'])}")
    else:
        if r.get("unexpected_count") is not None and r.get("element_count") is not None:
            parts.append(f"unexpected={r['unexpected_count']} of {r['element_count']} rows")
        observed = json.dumps(r.get("observed_value"), ensure_ascii=False, default=str)
        if len(observed) > _MAX_OBSERVED_CHARS:
            observed = observed[:_MAX_OBSERVED_CHARS] + "…"
        parts.append(f"observed={observed}")
    return " | ".join(parts)


# ---------------------------------------------------------------------------------- database


def _libpq_url(url: str) -> str:
    """psycopg2 wants a libpq URL: drop a SQLAlchemy driver suffix (postgresql+psycopg2://)."""
    return re.sub(r"^postgres(?:ql)?\+\w+://", "postgresql://", url)


def _missing_tables(conn: PgConnection, tables: Sequence[str]) -> set[str]:
    missing = set()
    with conn.cursor() as cur:
        for table in dict.fromkeys(tables):
            cur.execute("select to_regclass(%s)", (table,))
            if fetch_one(cur)[0] is None:
                missing.add(table)
    conn.rollback()
    return missing


def _record(conn: PgConnection, results: list[dict], *, run_id: str, business_date: date, checkpoint: str,
            former_names: Sequence[str] = ()) -> None:
    """Replace this run's rows in dq.validation_results, in one transaction (rows recorded under one of
    the checkpoint's former names are this checkpoint's too)."""
    from psycopg2.extras import Json, execute_values

    rows = [
        (run_id, business_date, checkpoint, r["suite"], r["target_table"], r["expectation_type"], r["column_name"],
         Json(r["kwargs"]), r["success"], None if r["observed_value"] is None else Json(r["observed_value"]),
         r["unexpected_count"], r["element_count"])
        for r in results
    ]
    try:
        with conn.cursor() as cur:
            # serialise reruns of the same checkpoint (dq.validation_results: created by the migrations)
            cur.execute("select pg_advisory_xact_lock(hashtext('hospital_ops.dq.validation_results'))")
            cur.execute(f"delete from {DQ_SCHEMA}.{DQ_TABLE} where run_id = %s and checkpoint = any(%s)",
                        (run_id, [checkpoint, *former_names]))
            if rows:
                execute_values(cur, f"insert into {DQ_SCHEMA}.{DQ_TABLE} ({', '.join(_DQ_COLUMNS)}) values %s",
                               rows, page_size=1000)
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    log.info("recorded %d expectation results in %s.%s for run %s", len(rows), DQ_SCHEMA, DQ_TABLE, run_id)


def _safe_run_name(run_id: str) -> str:
    """Data Docs put the run name into file paths: keep it to safe characters."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", run_id) or "run"


# ------------------------------------------------------------------------- quarantine share

QUARANTINE_CHECKPOINT = "quarantine_share"
QUARANTINE_THRESHOLDS_SEED = "quality_quarantine_thresholds"
_TOP_REASONS = 3


def quarantine_thresholds(seeds_dir: Path | None = None) -> dict[tuple[str, str], float]:
    """(source, entity) → the largest share of a night's rows that may be quarantined (seed
    `quality_quarantine_thresholds`; `*` matches any source or the source as a whole)."""
    import csv

    path = (seeds_dir or settings().dbt_project_dir / "seeds") / f"{QUARANTINE_THRESHOLDS_SEED}.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        return {(row["source"].strip(), row["entity"].strip()): float(row["max_quarantined_share"])
                for row in csv.DictReader(handle)}


def _threshold(thresholds: dict[tuple[str, str], float], source: str, entity: str) -> float:
    for key in ((source, entity), (source, "*"), ("*", entity), ("*", "*")):
        if key in thresholds:
            return thresholds[key]
    return 1.0


def check_quarantine_share(
    warehouse_url: str,
    *,
    run_id: str,
    business_date: date,
    thresholds: dict[tuple[str, str], float] | None = None,
    raise_on_failure: bool = True,
) -> GateResult:
    """Fail a source (and name the entity) whose quarantined share of tonight's rows exceeds its threshold.

    A night that landed nothing of a source's rows (every one quarantined) would otherwise pass every
    expectation on empty tables and publish nothing. Each source's night as a whole (entity `*`) and each
    entity is checked; a failure names the top quarantine reasons. Results are recorded in
    dq.validation_results under the checkpoint `quarantine_share`.
    """
    import psycopg2

    from hospital_ops.load.loader import reason_category

    thresholds = thresholds if thresholds is not None else quarantine_thresholds()
    if isinstance(business_date, str):
        business_date = date.fromisoformat(business_date)
    results: list[dict] = []
    conn = psycopg2.connect(_libpq_url(warehouse_url))
    try:
        if not _missing_tables(conn, ["raw._load_files"]):
            with conn.cursor() as cur:
                cur.execute("select source, entity, sum(rows_read), sum(rows_quarantined) from raw._load_files "
                            "where batch_date = %s group by source, entity order by source, entity", (business_date,))
                counts = [(s, e, int(r), int(q)) for s, e, r, q in cur.fetchall()]
                cur.execute("select source, entity, reason from raw._quarantine where batch_date = %s",
                            (business_date,))
                reasons: dict[tuple[str, str], dict[str, int]] = {}
                for source, entity, reason in cur.fetchall():
                    category = reason_category(entity, reason)
                    for key in ((source, entity), (source, "*")):
                        bucket = reasons.setdefault(key, {})
                        bucket[category] = bucket.get(category, 0) + 1
            totals: dict[str, list[int]] = {}
            for source, _entity, read, quarantined in counts:
                totals.setdefault(source, [0, 0])
                totals[source][0] += read
                totals[source][1] += quarantined
            checks = [(s, "*", r, q) for s, (r, q) in sorted(totals.items())] + counts
            for source, entity, read, quarantined in checks:
                if read == 0:
                    continue
                limit = _threshold(thresholds, source, entity)
                share = quarantined / read
                top = sorted(reasons.get((source, entity), {}).items(), key=lambda kv: -kv[1])[:_TOP_REASONS]
                results.append({
                    "checkpoint": QUARANTINE_CHECKPOINT, "suite": QUARANTINE_CHECKPOINT,
                    "target_table": f"raw.{source}__{entity}" if entity != "*" else f"raw.{source}__*",
                    "row_filter": f"_batch_date = '{business_date}'",
                    "expectation_type": "quarantined_share_at_most", "column_name": None,
                    "kwargs": {"source": source, "entity": entity, "max_quarantined_share": limit},
                    "success": share <= limit,
                    "observed_value": {"quarantined": quarantined, "rows_read": read, "share": round(share, 4),
                                       "top_reasons": [f"{n}× {reason}" for reason, n in top]},
                    "unexpected_count": quarantined, "element_count": read, "exception": None,
                })
        _record(conn, results, run_id=run_id, business_date=business_date, checkpoint=QUARANTINE_CHECKPOINT)
    finally:
        conn.close()
    outcome = GateResult(success=all(r["success"] for r in results), run_id=run_id, business_date=business_date,
                         results=results, checkpoint=QUARANTINE_CHECKPOINT)
    if not outcome.success:
        log.error("%s", outcome.failure_report())
        if raise_on_failure:
            raise QualityGateFailed(outcome.failure_report(), outcome)
    else:
        log.info("%s", outcome.summary())
    return outcome
