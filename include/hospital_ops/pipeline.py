"""The nightly pipeline's steps, importable and testable without Airflow running.

The DAG in dags/hospital_ops_nightly.py only wires these together:
extract → load raw → dbt build (staging, marts) → quality gate → dbt build (scoring, alerts)
→ snapshots → publish → summary.

Publishing is the write-audit-publish step: dbt builds marts and scoring into `marts_build` and
`scoring_build`; only after the gate and scoring succeed are they copied, all in one transaction,
into `marts` and `scoring`, the schemas BI reads. A failed night therefore leaves BI exactly as the
last good night left it.
"""

from __future__ import annotations

import logging
import os
from contextlib import closing
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg2

from hospital_ops import batches, limits, security
from hospital_ops.config import pseudonym_key, settings
from hospital_ops.db import fetch_one
from hospital_ops.extract import remove_night_folder
from hospital_ops.extract.api import ApiExtraction, ApiSettings, extract_api_source
from hospital_ops.extract.fhir_night import (
    FhirServerSettings,
    extract_his_fhir,
    fhir_export_dir,
    his_kind,
    load_his_fhir_detail,
)
from hospital_ops.extract.sql import (
    DEFAULT_SCHEMA,
    extract_sql_source,
    landed_versions,
    load_watermarks,
    read_from,
    save_watermarks,
    watermark_overlap,
)
from hospital_ops.load.loader import (
    ManifestEntry,
    ensure_raw_schema,
    load_night,
    plan_extract,
    reason_category,
    watermark,
)
from hospital_ops.sources import SOURCES
from hospital_ops.sources.spec import Source

if TYPE_CHECKING:
    from psycopg2.extensions import connection as PgConnection
    from psycopg2.extensions import cursor as PgCursor

    from hospital_ops.extract.sql import SqlExtraction

log = logging.getLogger(__name__)

PUBLISHED_SCHEMAS = {"marts_build": "marts", "scoring_build": "scoring"}


def connect(warehouse_url: str) -> PgConnection:
    return psycopg2.connect(warehouse_url, application_name="hospital_ops", options=limits.session_options())


# ------------------------------------------------------------------------------ extract / load


class SourceNotConfigured(RuntimeError):
    """A source that is not set up (no database URL, no inbox folder yet): the night runs without it,
    its raw tables stay as they are, and the skipped task in Airflow says why."""


def extract(source_name: str | Source, *, warehouse_url: str, business_date: date, inbox: Path | None = None,
            source_url: str | None = None, source_token: str | None = None,
            fhir_server: FhirServerSettings | None = None, api_settings: ApiSettings | None = None) -> dict:
    """Take this night's files of a source: drop folders after the watermark (file sources), or an
    extract of the rows changed since the last night from the source database (SQL sources) or the
    source's API (API sources: `source_url` is the base URL, `source_token` the bearer token, and
    `api_settings` the page size, timeouts and retries, by default from the environment).

    `source_name` is a source of hospital_ops.sources.SOURCES, or a source spec itself."""
    source = _source(source_name)
    source_name = source.name
    incremental = source.extract in ("sql", "api")
    if source_name == "his" and his_kind() == "fhir":  # the HIS over HL7 FHIR R4 (extract/fhir_night.py)
        fhir_server = fhir_server or FhirServerSettings.from_env()  # the Airflow connection `his_fhir`, else env
        if fhir_export_dir() is None and fhir_server is None:
            raise SourceNotConfigured("his: HIS_KIND=fhir but no FHIR export configured (set HIS_FHIR_URL or "
                                      "HIS_FHIR_DIR, or the Airflow connection 'his_fhir')")
        with closing(connect(warehouse_url)) as conn:
            ensure_raw_schema(conn, source)
            return extract_his_fhir(conn, business_date=business_date, export_dir=fhir_export_dir(),
                                    server=fhir_server)
    with closing(connect(warehouse_url)) as conn:
        ensure_raw_schema(conn, source)  # staging can build on an empty source
        if source_name == "his":  # the FHIR detail tables exist, empty, on a SQL HIS too
            from hospital_ops.sources.his_fhir import SOURCE as HIS_FHIR_SOURCE

            ensure_raw_schema(conn, HIS_FHIR_SOURCE)
        if incremental:
            if not source_url:
                what = "database" if source.extract == "sql" else "API URL"
                raise SourceNotConfigured(f"{source_name}: no {what} configured (set {(source.connection or source_name).upper()}_URL "
                                          f"or the Airflow connection {source.connection!r})")
            watermarks = load_watermarks(conn, source.name, business_date)
            overlap = watermark_overlap()  # the look-back, and what it must not load twice
            landed = landed_versions(conn, source, business_date,
                                     {name: read_from(mark, overlap) for name, mark in watermarks.items()})
        else:
            after = watermark(conn, source.name, business_date)
    extracted: dict[str, str] = {}
    counts: dict[str, dict[str, int]] = {}
    if incremental:
        assert source_url  # refused above when missing
        extraction: SqlExtraction | ApiExtraction
        if source.extract == "sql":
            extraction = extract_sql_source(source, source_url, settings().landing_dir, business_date,
                                            watermarks=watermarks, landed=landed, overlap=overlap,
                                            schema=source.sql_schema or DEFAULT_SCHEMA)
        else:
            api_settings = api_settings or ApiSettings.from_env(source.connection or source.name)
            extraction = extract_api_source(source, source_url, source_token, settings().landing_dir,
                                            business_date, watermarks=watermarks, landed=landed, overlap=overlap,
                                            **api_settings.extract_options())
        extracted = {entity: stamp.isoformat() for entity, stamp in extraction.max_updated_at.items()}
        counts = _extraction_counts(extraction)
        # exactly this night's folder (the rows of a failed earlier night were read again from the source)
        entries = plan_extract(settings().landing_dir, source, business_date, business_date - timedelta(days=1))
    else:
        inbox = inbox or settings().inbox_dir
        if not (inbox / source.name).is_dir():
            raise SourceNotConfigured(f"{source_name}: nothing has ever been delivered to {inbox / source.name}")
        entries = plan_extract(inbox, source, business_date, after)
    log.info("%s: %d files for night %s", source_name, len(entries), business_date)
    return {
        "files": [{"entity": e.entity, "path": str(e.path), "relative_path": e.relative_path,
                   "folder_date": e.folder_date.isoformat()} for e in entries],
        "watermarks": extracted,
        **({"counts": counts} if counts else {}),
    }


def _source(source: str | Source) -> Source:
    return SOURCES[source] if isinstance(source, str) else source


def _extraction_counts(extraction: SqlExtraction | ApiExtraction) -> dict[str, dict[str, int]]:
    """Per entity, what an incremental extract read (the task's return value shows it in Airflow): rows
    written, versions of the look-back skipped as landed, and for an API pages read and records served twice."""
    counts = {"rows": dict(extraction.rows), "already_landed": dict(extraction.already_landed)}
    if isinstance(extraction, ApiExtraction):
        counts |= {"pages": dict(extraction.pages), "duplicates_skipped": dict(extraction.duplicates_skipped)}
    return counts


def load(source_name: str | Source, extracted: dict, *, warehouse_url: str, business_date: date,
         run_id: str) -> dict:
    """Land the extracted files (one transaction per source night); return the reconciliation."""
    source = _source(source_name)
    entries = [
        ManifestEntry(m["entity"], Path(m["path"]), m["relative_path"], date.fromisoformat(m["folder_date"]))
        for m in extracted["files"]
    ]
    with closing(connect(warehouse_url)) as conn:
        night = load_night(conn, source, entries, run_id=run_id, batch_date=business_date, key=pseudonym_key())
        if source.extract in ("sql", "api"):  # the watermark moves only once the rows have landed
            save_watermarks(conn, source.name, business_date,
                            {k: datetime.fromisoformat(v) for k, v in extracted["watermarks"].items()},
                            run_id=run_id)
        fhir_detail = load_his_fhir_detail(conn, extracted, business_date=business_date, run_id=run_id)
        if source.extract in ("sql", "api") and fhir_detail is None:
            # loaded: not kept on disk (a FHIR night's folder is removed by its detail load, once all of it landed,
            # so a retry of a failed detail load still finds its files)
            remove_night_folder(settings().landing_dir, source, business_date)
    if fhir_detail is not None:
        return night.as_dict() | {"fhir_detail": fhir_detail}
    return night.as_dict()


# ------------------------------------------------------------------------------------- publish


FORCE_PUBLISH_ENV = "HOSPITAL_OPS_FORCE_PUBLISH"


class PublicationOutOfOrder(RuntimeError):
    """A night older than the newest published one would put older figures over newer ones."""


def publication_forced() -> bool:
    """Whether this run may publish an older business date (`hospital-ops run-night D --force-publish`)."""
    return os.environ.get(FORCE_PUBLISH_ENV, "").strip().lower() in ("1", "true", "yes")


def check_publication_order(*, warehouse_url: str, business_date: date, force: bool | None = None) -> bool:
    """Refuse a business date older than the newest one published, unless forced; return whether this
    publication goes backwards (forced). Called before anything a night shares with later nights is
    written: the dbt builds of marts and scoring (incremental), the snapshots, and publish itself, so a
    refused night leaves BI, the build schemas' history and the snapshots as the newer night left them."""
    force = publication_forced() if force is None else force
    with closing(connect(warehouse_url)) as conn, conn.cursor() as cur:
        if not _table_exists(cur, "audit", "publications"):
            return False
        cur.execute("select max(business_date) from audit.publications")
        newest = fetch_one(cur)[0]
    if newest is None or business_date >= newest:
        return False
    if not force:
        raise PublicationOutOfOrder(
            f"refusing night {business_date}: {newest} is already published, and publishing an older night would "
            f"put its figures over newer ones and write backwards versions into the snapshots; its raw data is "
            f"loaded and the next night builds on it. To publish it anyway: hospital-ops run-night {business_date} "
            f"--force-publish ({FORCE_PUBLISH_ENV}=1), recorded in audit.publications.forced")
    log.warning("publishing %s over the newer %s: forced", business_date, newest)
    return True


def publish(*, warehouse_url: str, business_date: date, run_id: str) -> list[dict]:
    """Copy every table dbt built in the *_build schemas into the BI schemas, atomically."""
    backwards = check_publication_order(warehouse_url=warehouse_url, business_date=business_date)
    published: list[dict] = []
    with closing(connect(warehouse_url)) as conn:
        with conn.cursor() as cur:
            for build_schema, bi_schema in PUBLISHED_SCHEMAS.items():
                cur.execute(f"create schema if not exists {bi_schema}")
                cur.execute(
                    "select table_name from information_schema.tables "
                    "where table_schema = %s and table_type = 'BASE TABLE' order by table_name",
                    (build_schema,),
                )
                for (table,) in cur.fetchall():
                    rows = _publish_table(cur, build_schema, bi_schema, table)
                    published.append({"relation": f"{bi_schema}.{table}", "rows": rows})
            cur.execute("delete from audit.publications where run_id = %s", (run_id,))
            for item in published:
                cur.execute(
                    "insert into audit.publications (run_id, business_date, relation, row_count) values (%s, %s, %s, %s)",
                    (run_id, business_date, item["relation"], item["rows"]),
                )
            _record_forced(cur, run_id, backwards)
            security.apply_grants(cur)
        conn.commit()
    log.info("published %d relations for %s", len(published), business_date)
    return published


def _record_forced(cur: PgCursor, run_id: str, forced: bool) -> None:
    """audit.publications.forced: this publication went backwards on purpose (--force-publish)."""
    if forced:
        cur.execute("update audit.publications set forced = true where run_id = %s", (run_id,))


def _columns(cur: PgCursor, schema: str, table: str) -> list[tuple[str, str]]:
    cur.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = %s and table_name = %s order by ordinal_position",
        (schema, table),
    )
    return cur.fetchall()


def _publish_table(cur: PgCursor, build_schema: str, bi_schema: str, table: str) -> int:
    source_columns = _columns(cur, build_schema, table)
    if (_columns(cur, bi_schema, table) == source_columns
            and _constraints(cur, bi_schema, table) == _constraints(cur, build_schema, table)):
        # same shape: keep the relation (and its grants), swap its content
        cur.execute(f"truncate {bi_schema}.{table}")
        cur.execute(f"insert into {bi_schema}.{table} select * from {build_schema}.{table}")
    else:
        # the built table's definition as dbt's contract made it: not-null and check constraints, primary
        # key and other indexes, defaults, column comments (LIKE … INCLUDING ALL)
        cur.execute(f"drop table if exists {bi_schema}.{table}")
        cur.execute(f"create table {bi_schema}.{table} (like {build_schema}.{table} including all)")
        cur.execute(f"insert into {bi_schema}.{table} select * from {build_schema}.{table}")
    _copy_comments(cur, build_schema, bi_schema, table)
    cur.execute(f"analyze {bi_schema}.{table}")  # dashboards' queries are planned on tonight's rows
    cur.execute(f"select count(*) from {bi_schema}.{table}")
    return fetch_one(cur)[0]


def _constraints(cur: PgCursor, schema: str, table: str) -> list[tuple[str, str]]:
    cur.execute(
        "select c.contype::text, pg_get_constraintdef(c.oid) from pg_constraint c "
        "join pg_class t on t.oid = c.conrelid join pg_namespace n on n.oid = t.relnamespace "
        "where n.nspname = %s and t.relname = %s order by 1, 2",
        (schema, table),
    )
    return cur.fetchall()


def _copy_comments(cur: PgCursor, build_schema: str, bi_schema: str, table: str) -> None:
    """The descriptions dbt wrote on the built table (persist_docs) onto the published one, table and
    columns, so a person browsing the warehouse reads what each published column means."""
    cur.execute(
        """
        select a.attname, col_description(a.attrelid, a.attnum), obj_description(a.attrelid, 'pg_class')
        from pg_attribute a
        where a.attrelid = format('%%I.%%I', %s::text, %s::text)::regclass and a.attnum > 0 and not a.attisdropped
        """,
        (build_schema, table),
    )
    rows = cur.fetchall()
    if not rows:
        return
    cur.execute(f"comment on table {bi_schema}.{table} is %s", (rows[0][2],))
    for column, comment in ((column, comment) for column, comment, _ in rows):
        cur.execute(f'comment on column {bi_schema}.{table}."{column}" is %s', (comment,))


# ------------------------------------------------------------------------------------- summary


def night_summary(*, warehouse_url: str, business_date: date) -> dict:
    """What a person wants to see after a night: volumes, quarantine, gate, ratings, warnings."""
    summary: dict = {"business_date": business_date.isoformat()}
    with closing(connect(warehouse_url)) as conn, conn.cursor() as cur:
        cur.execute(
            "select source, count(*), sum(rows_read), sum(rows_loaded), sum(rows_quarantined) "
            "from raw._load_files where batch_date = %s group by source order by source",
            (business_date,),
        )
        summary["sources"] = [
            {"source": s, "files": f, "rows_read": int(r), "rows_loaded": int(ld), "rows_quarantined": int(q)}
            for s, f, r, ld, q in cur.fetchall()
        ]
        cur.execute(
            "select entity, reason from raw._quarantine where batch_date = %s order by entity, row_number",
            (business_date,),
        )
        reasons: dict[str, int] = {}
        for entity, reason in cur.fetchall():
            key = reason_category(entity, reason)
            reasons[key] = reasons.get(key, 0) + 1
        summary["quarantine_top_reasons"] = sorted(reasons.items(), key=lambda kv: -kv[1])[:8]
        summary["quality_gate"] = _gate_result(cur, business_date)
        summary["published"] = _table_exists(cur, "audit", "publications") and _published(cur, business_date)
        summary["held_batches"] = batches.held_batches(cur)
        summary["source_freshness"] = _source_freshness(cur, business_date)
        if _table_exists(cur, "scoring", "vendor_credit_rating"):
            cur.execute(
                "select distinct on (vendor_id) vendor_id, rating_month, credit_rating, total_score "
                "from scoring.vendor_credit_rating order by vendor_id, rating_month desc"
            )
            summary["vendor_ratings"] = [
                {"vendor_id": v, "rating_month": m.isoformat(), "rating": r, "score": float(s)}
                for v, m, r, s in cur.fetchall()
            ]
            cur.execute(
                "select colour, count(*) from scoring.vendor_risk_warnings where status <> 'resolved' "
                "group by colour order by colour"
            )
            summary["open_warnings_by_colour"] = dict(cur.fetchall())
            cur.execute(
                "select vendor_id, rule_id, colour, period_month, subject, observed_value, status, "
                "first_seen_on = %s as is_new, resolved_on = %s as resolved_tonight "
                "from scoring.vendor_risk_warnings where status <> 'resolved' or resolved_on = %s "
                "order by case colour when 'red' then 0 when 'yellow' then 1 else 2 end, vendor_id, rule_id, "
                "period_month",
                (business_date, business_date, business_date),
            )
            summary["warnings"] = [
                {"vendor_id": v, "rule_id": r, "colour": c, "period_month": p.isoformat() if p else None,
                 "subject": s, "observed_value": float(o), "status": st, "new": bool(n), "resolved": bool(rs)}
                for v, r, c, p, s, o, st, n, rs in cur.fetchall()
            ]
            cur.execute(
                "select vendor_id, rule_id, decision, period_month from scoring.vendor_supervision_decisions "
                "order by vendor_id, rule_id"
            )
            summary["decisions"] = [
                {"vendor_id": v, "rule_id": r, "decision": d, "period_month": p.isoformat()}
                for v, r, d, p in cur.fetchall()
            ]
    summary["platform"] = _platform(warehouse_url, business_date)
    return summary


def _platform(warehouse_url: str, business_date: date) -> dict:
    """The whole platform in the dashboards' words (hospital_ops.summary: the rpt_ models and the
    generators' scenario files)."""
    from hospital_ops import summary as platform
    from hospital_ops.config import settings

    cfg = settings()
    return platform.collect(warehouse_url, business_date=business_date, var_dir=cfg.var_dir,
                            inbox_dir=cfg.inbox_dir, survey_file=cfg.survey_simulator_file)


def _source_freshness(cur: PgCursor, business_date: date) -> list[dict]:
    """The night's `dbt source freshness` per source table (dbt_runner records it), worst first."""
    if not _table_exists(cur, "dq", "source_freshness"):
        return []
    cur.execute(
        "select source, table_name, status, max_loaded_at, age_seconds, warn_after, error_after, message "
        "from dq.source_freshness where business_date = %s "
        "order by case status when 'pass' then 2 when 'warn' then 1 else 0 end, source, table_name",
        (business_date,),
    )
    return [{"source": s, "table": t, "status": st, "max_loaded_at": m.isoformat(timespec="minutes") if m else None,
             "age_days": round(a / 86400, 1) if a is not None else None, "warn_after": w, "error_after": e,
             "message": msg} for s, t, st, m, a, w, e, msg in cur.fetchall()]


def _published(cur: PgCursor, business_date: date) -> bool:
    cur.execute("select exists (select 1 from audit.publications where business_date = %s)", (business_date,))
    return bool(fetch_one(cur)[0])


def _table_exists(cur: PgCursor, schema: str, table: str) -> bool:
    cur.execute("select to_regclass(%s) is not null", (f"{schema}.{table}",))
    return bool(fetch_one(cur)[0])


def _gate_result(cur: PgCursor, business_date: date) -> dict:
    if not _table_exists(cur, "dq", "validation_results"):
        return {"ran": False}
    cur.execute(
        "select run_id from dq.validation_results where business_date = %s order by validated_at desc limit 1",
        (business_date,),
    )
    row = cur.fetchone()
    if row is None:
        return {"ran": False}
    cur.execute(
        "select count(*), count(*) filter (where success), "
        "array_agg(suite || ': ' || expectation_type || coalesce(' on ' || column_name, '')) filter (where not success) "
        "from dq.validation_results where run_id = %s",
        (row[0],),
    )
    total, passed, failures = fetch_one(cur)
    return {"ran": True, "run_id": row[0], "expectations": total, "passed": passed, "failures": failures or []}


def format_summary(summary: dict, warehouse_url: str | None = None, *, detailed: bool = True) -> str:
    """A night in a few lines; `detailed` adds every open warning, rating and decision."""
    lines = [f"Night {summary['business_date']}"]
    for s in summary.get("sources", []):
        lines.append(f"  {s['source']}: {s['files']} files, {s['rows_read']} rows read, "
                     f"{s['rows_loaded']} loaded, {s['rows_quarantined']} quarantined")
    if summary.get("quarantine_top_reasons"):
        lines.append("  quarantine, top reasons:")
        lines += [f"    {count:>5}  {reason}" for reason, count in summary["quarantine_top_reasons"]]
    gate = summary.get("quality_gate", {})
    if gate.get("ran"):
        verdict = "PASSED" if not gate["failures"] else "FAILED"
        lines.append(f"  quality gate: {verdict} ({gate['passed']}/{gate['expectations']} expectations)")
        lines += [f"    failed: {f}" for f in gate["failures"]]
    if "published" in summary and not summary["published"]:
        lines.append("  night FAILED before publishing: BI still shows the last published night")
    freshness = summary.get("source_freshness", [])
    if freshness:
        counts = {status: sum(f["status"] == status for f in freshness) for status in dict.fromkeys(
            f["status"] for f in freshness)}
        lines.append("  source freshness 数据源时效: " + ", ".join(f"{n} {status}" for status, n in counts.items()))
        for f in (f for f in freshness if f["status"] != "pass"):
            if f["status"] == "warn":
                what = f"stale 数据滞后, past warn_after {f['warn_after']}"
            elif f["status"] == "error":
                what = f"stale 数据停更, past error_after {f['error_after']}: its models not rebuilt tonight 下游模型今晚未重建"
            else:
                what = f"not checked 无法检查: {f['message']}; its models not rebuilt tonight 下游模型今晚未重建"
            lines.append(f"    {f['status']:<6} {f['source']}.{f['table']}: last loaded {f['max_loaded_at']}"
                         + (f" ({f['age_days']:g} days ago)" if f["age_days"] is not None else "") + f", {what}")
    if summary.get("held_batches"):
        lines.append("  held out of publication until corrected or accepted (hospital-ops batches accept …):")
        lines += [f"    {h['source']}.{h['entity']} batch {h['batch_date']}: {h['reasons']}" for h in summary["held_batches"]]
    if "vendor_ratings" in summary:
        colours = summary.get("open_warnings_by_colour", {})
        warnings = summary.get("warnings", [])
        new = [w for w in warnings if w["new"] and not w["resolved"]]
        resolved = [w for w in warnings if w["resolved"]]
        lines.append("  open warnings: " + ", ".join(f"{c} {colours.get(c, 0)}" for c in ("red", "yellow", "blue"))
                     + f" ({len(new)} new tonight, {len(resolved)} resolved tonight)")
        shown = [w for w in warnings if detailed or w["new"] or w["resolved"]]
        lines += [f"    {w['colour']:<6} {w['vendor_id']} {w['rule_id']:<28} {w['period_month'][:7]} "
                  f"observed {w['observed_value']:g}{'' if w['subject'] == '-' else ' (' + w['subject'] + ')'}"
                  f"{'  [new]' if w['new'] and not w['resolved'] else ''}{'  [resolved]' if w['resolved'] else ''}"
                  for w in shown]
        ratings: dict[str, list[str]] = {}
        for r in summary["vendor_ratings"]:
            ratings.setdefault(r["rating"], []).append(r["vendor_id"])
        order = ["AAA", "AA", "A", "B", "C"]
        lines.append("  vendor credit ratings: " + ", ".join(
            f"{k} {len(ratings[k])}" + (f" ({' '.join(ratings[k])})" if detailed else "")
            for k in order if k in ratings))
        if detailed and summary.get("decisions"):
            lines.append("  supervision decisions:")
            lines += [f"    {d['vendor_id']} {d['decision']} ({d['rule_id']}, {d['period_month'][:7]})"
                      for d in summary["decisions"]]
    if detailed and summary.get("platform"):
        from hospital_ops import summary as platform

        lines.append(platform.format_platform(summary["platform"], **_role_urls() if warehouse_url else {}))
    elif warehouse_url:
        lines.append("  explore the marts 查看数据: psql \"$(hospital-ops warehouse url --role bi_reader)\"")
    return "\n".join(lines)


def _role_urls() -> dict[str, str | None]:
    """BI's and the auditors' connection strings, passwords redacted (never the writer's): where a
    person should look. None when a role's URL is not known here (an external warehouse's DBA has it)."""
    from hospital_ops import security, warehouse

    urls: dict[str, str | None] = {}
    for key, role in (("bi_reader_url", security.BI_READER), ("auditor_url", security.AUDITOR)):
        try:
            urls[key] = warehouse.redacted(warehouse.role_url(role))
        except Exception:  # noqa: BLE001 - the hint `hospital-ops warehouse url --role …` is printed instead
            urls[key] = None
    return urls
