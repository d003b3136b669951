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
from hospital_ops.config import environment, settings

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
    # the rpt_ models (models/marts/reporting) read scores, ratings and warnings: they follow scoring
    "scoring": ["build", "--select", "tag:scoring", "tag:reporting", *_NIGHTLY],
    "snapshots": ["snapshot"],
}


# the dbt documentation site `dbt docs generate --static` writes: index.html with manifest.json and
# catalog.json beside it (served over HTTP), and static_index.html with both built in (opens from disk)
DOCS_FILES = ("index.html", "manifest.json", "catalog.json", "static_index.html")


class DbtStageFailed(RuntimeError):
    pass


# stages that write what later nights build on or auditors read (incremental marts and scoring, snapshots)
_SHARED_STAGES = ("marts", "scoring", "snapshots")


@dataclass
class NodeResult:
    name: str
    resource_type: str
    status: str
    message: str | None
    execution_time: float


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


def run_stage(stage: str, *, warehouse_url: str, business_date: date) -> list[NodeResult]:
    """Run one nightly dbt stage; return per-node results or raise DbtStageFailed naming what failed."""
    command = STAGES[stage]
    if stage in _SHARED_STAGES:  # never build or snapshot a night older than the one published (unless forced)
        from hospital_ops.pipeline import PublicationOutOfOrder, check_publication_order

        try:
            check_publication_order(warehouse_url=warehouse_url, business_date=business_date)
        except PublicationOutOfOrder as exc:
            raise DbtStageFailed(str(exc)) from exc
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
    results = run_dbt(command, warehouse_url=warehouse_url, business_date=business_date, label=stage)
    if held_set:
        _record_held_set(warehouse_url, held_set)
    return results


def _held_set_changed(warehouse_url: str) -> str | None:
    from contextlib import closing

    from hospital_ops.batches import marts_full_refresh_needed
    from hospital_ops.pipeline import connect

    with closing(connect(warehouse_url)) as conn:
        return marts_full_refresh_needed(conn)


def _record_held_set(warehouse_url: str, held_set: str) -> None:
    from contextlib import closing

    from hospital_ops.batches import record_held_set_applied
    from hospital_ops.pipeline import connect

    with closing(connect(warehouse_url)) as conn:
        record_held_set_applied(conn, held_set)


def docs_dir() -> Path:
    """Where the generated dbt documentation site is published: <var>/dbt_docs/."""
    return settings().var_dir / "dbt_docs"


def generate_docs(*, warehouse_url: str, business_date: date) -> Path:
    """`dbt docs generate --static` against the warehouse (the catalog reads the tables the last night
    built), then copy the site into docs_dir(), replacing the previous one; return that folder."""
    target_path = settings().var_dir / "dbt" / "docs-target"
    run_dbt(["docs", "generate", "--static", "--quiet"], warehouse_url=warehouse_url, business_date=business_date,
            label="docs", target_path=target_path)
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
            if not cur.fetchone()[0]:
                return []
            cur.execute("select distinct source from raw._load_files where rows_loaded > 0 order by 1")
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


def run_dbt(command: list[str], *, warehouse_url: str, business_date: date, label: str,
            target_path: Path | None = None) -> list[NodeResult]:
    """Invoke dbt once with the project's paths, connection and business date."""
    from dbt.cli.main import dbtRunner

    cfg = settings()
    target_path = target_path or cfg.var_dir / "dbt" / "target"
    args = [
        *command,
        "--project-dir", str(cfg.dbt_project_dir),
        "--profiles-dir", str(cfg.dbt_project_dir),
        "--target-path", str(target_path),
        "--log-path", str(cfg.var_dir / "dbt" / "logs"),
        "--vars", json.dumps({"business_date": business_date.isoformat()}),
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
                                      float(item.execution_time or 0)))
    failed = [r for r in results if r.status in ("error", "fail", "runtime error")]
    if failed or not outcome.success:
        lines = [f"  {r.resource_type} {r.name}: {r.status} — {r.message}" for r in failed]
        if outcome.exception is not None:
            lines.append(f"  dbt raised: {outcome.exception}")
        message = f"dbt stage {label!r} failed for business date {business_date}:\n" + "\n".join(lines)
        log.error(message)
        raise DbtStageFailed(message)
    warned = [r for r in results if r.status == "warn"]
    for r in warned:
        log.warning("dbt %s %s warned: %s", r.resource_type, r.name, r.message)
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
