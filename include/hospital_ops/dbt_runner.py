"""Run one dbt invocation per pipeline stage, and make any failure readable by name.

dbt runs in-process through its programmatic entry point (`dbtRunner`): one `dbt build` per stage
(not one task per model), so a night pays dbt's start-up once per stage. A failed model or test
raises DbtStageFailed whose message lists every failing node by name with dbt's own message.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import unquote, urlparse

from hospital_ops import limits
from hospital_ops.config import date_bounds, environment, settings
from hospital_ops.db import fetch_one

log = logging.getLogger(__name__)

# what each stage selects; stages run in this order around the quality gate
# - cautious: a test runs in the stage that builds all of its parents, so a relationship test from
#   a scoring model to a mart waits for the scoring stage;
# - unit tests are for development and CI (`make test` runs them), not for the nightly run, as dbt
#   advises: they need no production data and an incremental model's unit test needs the relation.
_NIGHTLY = ["--indirect-selection", "cautious", "--exclude-resource-type", "unit_test"]
STAGES: dict[str, list[str]] = {
    "freshness": ["source", "freshness"],
    "marts": ["build", "--select", "tag:reference", "tag:staging", "tag:marts", "--exclude", "tag:reporting",
              *_NIGHTLY],
    # the rpt_ models (models/reporting) read scores, ratings and warnings: they follow scoring
    "scoring": ["build", "--select", "tag:scoring", "tag:reporting", *_NIGHTLY],
    "snapshots": ["snapshot"],
}


# the dbt documentation site `dbt docs generate --static` writes: index.html with manifest.json and
# catalog.json beside it (served over HTTP), and static_index.html with both built in (opens from disk)
DOCS_FILES = ("index.html", "manifest.json", "catalog.json", "static_index.html")


class DbtStageFailed(RuntimeError):
    def __init__(self, message: str, failed: list[NodeResult] | None = None, target_path: Path | None = None) -> None:
        super().__init__(message)
        self.failed = failed or []  # the failing nodes, and where dbt wrote the manifest that names them
        self.target_path = target_path


# stages that write what later nights build on or auditors read (incremental marts and scoring, snapshots)
_SHARED_STAGES = ("marts", "scoring", "snapshots")


@dataclass
class NodeResult:
    name: str
    resource_type: str
    status: str
    message: str | None
    execution_time: float
    unique_id: str = ""


def warehouse_env(warehouse_url: str) -> dict[str, str]:
    """Translate a postgresql:// URL into the variables profiles.yml reads."""
    parsed = urlparse(warehouse_url)
    return {
        "WAREHOUSE_HOST": parsed.hostname or "127.0.0.1",
        "WAREHOUSE_PORT": str(parsed.port or 5432),
        "WAREHOUSE_USER": unquote(parsed.username or "postgres"),
        "WAREHOUSE_PASSWORD": unquote(parsed.password or ""),
        "WAREHOUSE_DB": (parsed.path or "/hospital_ops").lstrip("/") or "hospital_ops",
        "PGOPTIONS": limits.session_options(),  # libpq reads it: dbt's sessions get the nightly limits
    }


# rebuilds of the marts stage after holding the batches its failing tests came from (_hold_failed_tests)
MAX_HOLDING_REBUILDS = 3


def run_stage(stage: str, *, warehouse_url: str, business_date: date, _rebuilds: int = 0) -> list[NodeResult]:
    """Run one nightly dbt stage; return per-node results or raise DbtStageFailed naming what failed.
    In the marts stage, tests that fail on rows of batches not yet published hold those batches (as a
    gate rejection does) and the stage is built again without them (hospital_ops.batches)."""
    command = STAGES[stage]
    if stage in _SHARED_STAGES:  # never build or snapshot a night older than the one published (unless forced)
        from hospital_ops.pipeline import PublicationOutOfOrder, check_publication_order

        try:
            check_publication_order(warehouse_url=warehouse_url, business_date=business_date)
        except PublicationOutOfOrder as exc:
            raise DbtStageFailed(str(exc)) from exc
    if stage == "marts":  # a batch a dbt test held, delivered again since: tested again tonight
        _release_redelivered(warehouse_url)
    held_set = _held_set_changed(warehouse_url) if stage == "marts" else None
    if held_set:  # incremental staging merged a batch since held (or must take one since released)
        log.info("the held batches changed since the last marts build: rebuilding with --full-refresh")
        command = [*command, "--full-refresh"]
    if stage == "freshness":
        # only sources that have delivered at least once: one not yet onboarded is not "stale"
        delivered = _delivered_sources(warehouse_url)
        if not delivered:
            log.info("source freshness: no source has delivered yet")
            return []
        command = [*command, "--select", *(f"source:{name}" for name in delivered)]
        return check_freshness(command, warehouse_url=warehouse_url, business_date=business_date)
    stale = stale_source_tables(warehouse_url, business_date) if stage == "marts" else []
    if stale:
        # a source table past its error_after fails only what depends on it: everything downstream of it
        # (dbt's own graph, `source:<source>.<table>+`) is left out of tonight's build. The build schemas
        # keep those models as the last night that built them, so BI keeps showing them unchanged (never
        # rebuilt on a feed that stopped), while every other source's marts build, gate and publish.
        # dq.source_freshness and the night's summary say which tables were left out and why.
        log.warning("source freshness: past error_after, their models are not rebuilt tonight: %s",
                    ", ".join(stale))
        command = [*command, "--exclude", *(f"source:{name}+" for name in stale)]
    try:
        results = run_dbt(command, warehouse_url=warehouse_url, business_date=business_date, label=stage)
    except DbtStageFailed as exc:
        if stage != "marts" or _rebuilds >= MAX_HOLDING_REBUILDS:
            raise
        held, untraced = _hold_failed_tests(warehouse_url, exc, business_date)
        if untraced:
            raise DbtStageFailed(f"{exc}\n  not traced to a batch not yet published, so the night stops:\n    "
                                 + "\n    ".join(untraced), exc.failed, exc.target_path) from exc
        if not held:
            raise
        log.warning("dbt tests failed only on rows of batches now held: building the marts again without them")
        return run_stage(stage, warehouse_url=warehouse_url, business_date=business_date, _rebuilds=_rebuilds + 1)
    if held_set and not stale:  # models left out did not take the held set: the next build must
        _record_held_set(warehouse_url, held_set)
    return results


# ------------------------------------------------------------------------------- source freshness

FRESHNESS_TABLE = "dq.source_freshness"
# dbt's freshness statuses (FreshnessStatus) that leave a source table's dependants out of the build
FRESHNESS_ERRORS = ("error", "runtime error")


def check_freshness(command: list[str], *, warehouse_url: str, business_date: date) -> list[NodeResult]:
    """`dbt source freshness`, recorded per source table in dq.source_freshness (the night's rows
    replaced, so a rerun keeps one check per night). It never fails the task by itself: a table past
    warn_after is a warning in the log and the summary; one past error_after leaves out of the marts
    stage only what depends on it (run_stage). dbt's own result is recorded: its sources.json."""
    target_path = settings().var_dir / "dbt" / "target"
    artifact = target_path / "sources.json"
    artifact.unlink(missing_ok=True)  # never record an earlier check as tonight's
    results = run_dbt(command, warehouse_url=warehouse_url, business_date=business_date, label="freshness",
                      target_path=target_path, node_errors_fail=False)
    if not artifact.is_file():  # no selected table has a freshness rule (dbt: "nothing to do")
        log.info("source freshness: no selected source table has a freshness rule")
    rows = [_freshness_row(item) for item in json.loads(artifact.read_text())["results"]] if artifact.is_file() else []
    _record_freshness(warehouse_url, business_date, rows)
    for row in rows:
        if row["status"] != "pass":
            log.warning("source freshness %s.%s: %s (last loaded %s)%s", row["source"], row["table_name"],
                        row["status"], row["max_loaded_at"], f": {row['message']}" if row["message"] else "")
    return results


def _freshness_row(item: dict) -> dict:
    """One result of dbt's sources.json (schema v3) as a row of dq.source_freshness."""
    _, _, source, table = item["unique_id"].split(".", 3)  # source.<project>.<source>.<table>
    criteria = item.get("criteria") or {}

    def after(key: str) -> str | None:
        rule = criteria.get(key) or {}
        return f"{rule['count']} {rule['period']}" if rule.get("count") and rule.get("period") else None

    return {"source": source, "table_name": table, "status": item["status"],
            "max_loaded_at": item.get("max_loaded_at"), "checked_at": item.get("snapshotted_at"),
            "age_seconds": item.get("max_loaded_at_time_ago_in_s"), "warn_after": after("warn_after"),
            "error_after": after("error_after"), "message": item.get("error")}


def _record_freshness(warehouse_url: str, business_date: date, rows: list[dict]) -> None:
    from contextlib import closing

    from hospital_ops.pipeline import connect

    with closing(connect(warehouse_url)) as conn, conn.cursor() as cur:
        cur.execute(f"delete from {FRESHNESS_TABLE} where business_date = %s", (business_date,))
        for row in rows:
            cur.execute(
                f"insert into {FRESHNESS_TABLE} (business_date, source, table_name, status, max_loaded_at, "
                "checked_at, age_seconds, warn_after, error_after, message) values "
                "(%(business_date)s, %(source)s, %(table_name)s, %(status)s, %(max_loaded_at)s, "
                "coalesce(%(checked_at)s::timestamptz, now()), %(age_seconds)s, %(warn_after)s, %(error_after)s, "
                "%(message)s)",
                row | {"business_date": business_date},
            )
        conn.commit()


def stale_source_tables(warehouse_url: str, business_date: date) -> list[str]:
    """`<source>.<table>` of each source table the night's freshness check found past error_after."""
    from contextlib import closing

    from hospital_ops.pipeline import connect

    with closing(connect(warehouse_url)) as conn, conn.cursor() as cur:
        cur.execute("select to_regclass(%s) is not null", (FRESHNESS_TABLE,))
        if not fetch_one(cur)[0]:
            return []
        cur.execute(f"select source || '.' || table_name from {FRESHNESS_TABLE} "
                    "where business_date = %s and status = any(%s) order by 1", (business_date, list(FRESHNESS_ERRORS)))
        return [row[0] for row in cur.fetchall()]


def _held_set_changed(warehouse_url: str) -> str | None:
    from contextlib import closing

    from hospital_ops.batches import marts_full_refresh_needed
    from hospital_ops.pipeline import connect

    with closing(connect(warehouse_url)) as conn:
        return marts_full_refresh_needed(conn)


def _release_redelivered(warehouse_url: str) -> None:
    from contextlib import closing

    from hospital_ops.batches import release_redelivered
    from hospital_ops.pipeline import connect

    with closing(connect(warehouse_url)) as conn:
        release_redelivered(conn)


def _hold_failed_tests(warehouse_url: str, exc: DbtStageFailed, business_date: date) -> tuple[bool, list[str]]:
    """Hold the batches the failing tests' rows came from; return whether any was held and the tests not
    traced to a batch not yet published. Nothing is held (the night stops) when anything else failed (a
    model, a test dbt could not run) or any test is not traced."""
    from contextlib import closing

    from hospital_ops.batches import FailedTest, hold_failed_tests
    from hospital_ops.pipeline import connect

    if not exc.failed or any(r.resource_type != "test" or r.status != "fail" for r in exc.failed):
        return False, []
    manifest_file = (exc.target_path or settings().var_dir / "dbt" / "target") / "manifest.json"
    nodes = json.loads(manifest_file.read_text())["nodes"]
    tests = []
    for result in exc.failed:
        node = nodes[result.unique_id]
        model = nodes.get(node.get("attached_node") or "", {})
        kwargs = (node.get("test_metadata") or {}).get("kwargs") or {}
        tests.append(FailedTest(name=result.name, model_relation=model.get("relation_name"),
                                failures_relation=node.get("relation_name"),
                                column_name=node.get("column_name") or kwargs.get("column_name")))
    with closing(connect(warehouse_url)) as conn:
        held, untraced = hold_failed_tests(conn, tests, run_id=os.environ.get("AIRFLOW_CTX_DAG_RUN_ID"),
                                           business_date=business_date)
    return bool(held), untraced


def _record_held_set(warehouse_url: str, held_set: str) -> None:
    from contextlib import closing

    from hospital_ops.batches import record_held_set_applied
    from hospital_ops.pipeline import connect

    with closing(connect(warehouse_url)) as conn:
        record_held_set_applied(conn, held_set)


def _record_warnings(business_date: date, stage: str, warned: list[NodeResult]) -> None:
    """The night's dbt warnings per stage, for its summary (hospital_ops.summary.dbt_warnings): one JSON
    file per business date under <var>/dbt/test_warnings/, the stage's entry replaced on a rerun. A file,
    not a table: dbt's own run_results.json is overwritten by each invocation."""
    folder = settings().var_dir / "dbt" / "test_warnings"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{business_date.isoformat()}.json"
    try:
        recorded = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except ValueError:
        recorded = {}
    recorded[stage] = [{"name": r.name, "resource_type": r.resource_type, "message": r.message} for r in warned]
    path.with_suffix(".tmp").write_text(json.dumps(recorded, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(path.with_suffix(".tmp"), path)


def docs_dir() -> Path:
    """Where the generated dbt documentation site is published: <var>/dbt_docs/."""
    return settings().var_dir / "dbt_docs"


def generate_docs(*, warehouse_url: str, business_date: date) -> Path:
    """`dbt docs generate --static` against the warehouse, then copy the site into docs_dir(), replacing
    the previous one; return that folder. The site names the relations BI reads: schema names resolve
    to the published ones (var published_schemas, macro generate_schema_name), so the catalog reads the
    published tables (`marts`, `scoring`) with their comments, not the build schemas."""
    from hospital_ops.pipeline import PUBLISHED_SCHEMAS

    target_path = settings().var_dir / "dbt" / "docs-target"
    run_dbt(["docs", "generate", "--static", "--quiet"], warehouse_url=warehouse_url, business_date=business_date,
            label="docs", target_path=target_path, extra_vars={"published_schemas": PUBLISHED_SCHEMAS})
    missing = [name for name in DOCS_FILES if not (target_path / name).is_file()]
    if missing:
        raise DbtStageFailed(f"dbt docs generate wrote no {', '.join(missing)} in {target_path}")
    site = docs_dir()
    site.mkdir(parents=True, exist_ok=True)
    for name in DOCS_FILES:
        shutil.copyfile(target_path / name, site / f".{name}.tmp")
        os.replace(site / f".{name}.tmp", site / name)  # a server reading the folder never sees half a file
    log.info("dbt docs published in %s", site)
    return site


def _delivered_sources(warehouse_url: str) -> list[str]:
    import psycopg2

    conn = psycopg2.connect(warehouse_url)
    try:
        with conn.cursor() as cur:
            cur.execute("select to_regclass('raw._load_files') is not null")
            if not fetch_one(cur)[0]:
                return []
            cur.execute("select distinct source from raw._load_files where rows_loaded > 0 order by 1")
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


def run_dbt(command: list[str], *, warehouse_url: str, business_date: date, label: str,
            target_path: Path | None = None, node_errors_fail: bool = True,
            extra_vars: dict | None = None) -> list[NodeResult]:
    """Invoke dbt once with the project's paths, connection and business date. With node_errors_fail
    off (source freshness), a node's error is the caller's to handle; only dbt itself failing raises."""
    from dbt.cli.main import dbtRunner

    cfg = settings()
    target_path = target_path or cfg.var_dir / "dbt" / "target"
    args = [
        *command,
        "--project-dir", str(cfg.dbt_project_dir),
        "--profiles-dir", str(cfg.dbt_project_dir),
        "--target-path", str(target_path),
        "--log-path", str(cfg.var_dir / "dbt" / "logs"),
        "--vars", json.dumps({"business_date": business_date.isoformat(),
                            "history_start_date": date_bounds().history_start.isoformat(), **(extra_vars or {})}),
    ]
    log.info("dbt %s", " ".join(args))
    started = time.perf_counter()
    with environment(warehouse_env(warehouse_url) | {"DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}):
        outcome = dbtRunner().invoke(args)
    results: list[NodeResult] = []
    if outcome.result is not None and hasattr(outcome.result, "results"):
        for item in outcome.result.results:
            node = item.node
            results.append(NodeResult(node.name, node.resource_type, str(item.status), item.message,
                                      float(item.execution_time or 0), node.unique_id))
    failed = [r for r in results if r.status in ("error", "fail", "runtime error")]
    if not node_errors_fail and outcome.exception is None and outcome.result is not None:
        failed = []  # recorded and acted on by the caller
    elif failed or not outcome.success:
        lines = [f"  {r.resource_type} {r.name}: {r.status} — {r.message}" for r in failed]
        if outcome.exception is not None:
            lines.append(f"  dbt raised: {outcome.exception}")
        message = f"dbt stage {label!r} failed for business date {business_date}:\n" + "\n".join(lines)
        log.error(message)
        raise DbtStageFailed(message, failed, target_path)
    warned = [r for r in results if r.status == "warn"]
    for r in warned:
        log.warning("dbt %s %s warned: %s", r.resource_type, r.name, r.message)
    if label in _SHARED_STAGES:
        _record_warnings(business_date, label, warned)
    # dbt's own elapsed time of running the nodes (several at once, with its threads): the SQL work; the
    # rest of the wall time is dbt's start-up (parsing the project, connecting, building the graph)
    running = getattr(outcome.result, "elapsed_time", None)
    if running is None:
        running = sum(r.execution_time for r in results)
    log.info("dbt stage %s: %d nodes ok, %d warnings; %.2f s running nodes, %.2f s wall", label, len(results),
             len(warned), running, time.perf_counter() - started)
    slowest = sorted((r for r in results if r.execution_time >= 0.01), key=lambda r: -r.execution_time)[:8]
    if slowest:
        log.info("dbt stage %s slowest nodes: %s", label,
                 ", ".join(f"{r.name} {r.execution_time:.2f} s" for r in slowest))
    return results
