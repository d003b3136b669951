"""The run ledger: every pipeline run leaves a tamper-evident record an auditor can check.

Each night appends one row to `audit.run_ledger`, successful or not: run id, business date, the
code version (git commit) and tool versions, every input file with its SHA-256 and row counts
(read, loaded, quarantined), the quality gate's verdict, and what was published with a content
digest of each published relation. The row's `payload` is hashed together with the previous row's
hash (SHA-256 over `prev_hash || payload::text`, computed by PostgreSQL so the canonical form of the
JSON never depends on a client), which chains the rows: editing, inserting or deleting a historical
row breaks every hash after it, and `hospital-ops audit verify` names the first row that no longer
matches. A trigger also refuses UPDATE, DELETE and TRUNCATE on the ledger, so an accident fails
loudly; the chain is what proves a deliberate edit. The head hash printed by `verify` can be noted
outside the database (a signed report, a ticket) to make truncating the newest rows detectable too.

The audit schema also holds the point-in-time functions auditors query (sql/audit_objects.sql).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
from contextlib import closing
from dataclasses import dataclass
from datetime import date, datetime, timezone
from importlib import metadata
from importlib.resources import files

import psycopg2

from hospital_ops import security
from hospital_ops.config import settings

log = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
_HASH_SQL = "encode(sha256(convert_to(%s || %s::jsonb::text, 'UTF8')), 'hex')"

_LEDGER_DDL = """
create schema if not exists audit;
create table if not exists audit.run_ledger (
    seq bigint generated always as identity primary key,
    payload jsonb not null,
    prev_hash text not null,
    row_hash text not null unique,
    run_id text generated always as (payload ->> 'run_id') stored,
    status text generated always as (payload ->> 'status') stored,
    business_date date not null,  -- a copy for queries; verify checks it against the payload
    recorded_at timestamptz not null default now()
);
create or replace function audit.refuse_change() returns trigger language plpgsql as $$
begin
    raise exception '% is append-only: % refused', tg_table_schema || '.' || tg_table_name, tg_op;
end $$;
drop trigger if exists run_ledger_append_only on audit.run_ledger;
create trigger run_ledger_append_only before update or delete on audit.run_ledger
    for each row execute function audit.refuse_change();
drop trigger if exists run_ledger_no_truncate on audit.run_ledger;
create trigger run_ledger_no_truncate before truncate on audit.run_ledger
    for each statement execute function audit.refuse_change();
"""


@dataclass
class VerifyResult:
    rows: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.first_bad_seq is None


def ensure_audit_objects(cur) -> None:  # type: ignore[no-untyped-def]
    """The ledger, its append-only trigger and the auditors' point-in-time functions and views."""
    cur.execute(_LEDGER_DDL)
    text = files("hospital_ops").joinpath("sql/audit_objects.sql").read_text(encoding="utf-8")
    for statement in (chunk.strip() for chunk in text.split(";\n\n")):
        if not statement or all(line.startswith("--") for line in statement.splitlines()):
            continue
        required = [line.split()[-1] for line in statement.splitlines() if line.startswith("-- @requires ")]
        if all(_exists(cur, relation) for relation in required):
            cur.execute(statement)
        else:
            log.info("audit object waits for %s", ", ".join(required))


def code_version() -> str:
    """The git commit the pipeline runs (with '+dirty' for uncommitted changes), or
    HOSPITAL_OPS_CODE_VERSION where the code is not a git checkout (a container image)."""
    if os.environ.get("HOSPITAL_OPS_CODE_VERSION"):
        return os.environ["HOSPITAL_OPS_CODE_VERSION"]
    root = settings().project_root
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def tool_versions(cur) -> dict[str, str]:  # type: ignore[no-untyped-def]
    versions = {"python": platform.python_version()}
    for package in ("dbt-core", "dbt-postgres", "great-expectations", "apache-airflow"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    cur.execute("show server_version")
    versions["postgresql"] = cur.fetchone()[0]
    return versions


def _exists(cur, relation: str) -> bool:  # type: ignore[no-untyped-def]
    cur.execute("select to_regclass(%s) is not null", (relation,))
    return bool(cur.fetchone()[0])


def _inputs(cur, run_id: str, business_date: date) -> list[dict]:  # type: ignore[no-untyped-def]
    if not _exists(cur, "raw._load_files"):
        return []
    cur.execute(
        "select source, entity, source_file, file_sha256, rows_read, rows_loaded, rows_quarantined "
        "from raw._load_files where batch_date = %s and run_id = %s order by source, source_file",
        (business_date, run_id),
    )
    names = ("source", "entity", "file", "sha256", "rows_read", "rows_loaded", "rows_quarantined")
    return [dict(zip(names, row)) for row in cur.fetchall()]


def _quality_gate(cur, run_id: str) -> dict:  # type: ignore[no-untyped-def]
    if not _exists(cur, "dq.validation_results"):
        return {"ran": False}
    cur.execute(
        "select count(*), count(*) filter (where not success), "
        "coalesce(jsonb_agg(jsonb_build_object('suite', suite, 'expectation', expectation_type, "
        "'column', column_name)) filter (where not success), '[]') "
        "from dq.validation_results where run_id = %s",
        (run_id,),
    )
    total, failed, failures = cur.fetchone()
    return {"ran": total > 0, "expectations": total, "failed": failed, "failures": failures}


def _published(cur, run_id: str) -> list[dict]:  # type: ignore[no-untyped-def]
    if not _exists(cur, "audit.publications"):
        return []
    cur.execute("select relation, row_count from audit.publications where run_id = %s order by relation", (run_id,))
    published = []
    for relation, rows in cur.fetchall():
        published.append({"relation": relation, "rows": rows, "content_md5": relation_digest(cur, relation)})
    return published


def relation_digest(cur, relation: str) -> str:  # type: ignore[no-untyped-def]
    """MD5 of a relation's rows in a fixed order: two identical publications have the same digest."""
    cur.execute(f"select md5(coalesce(string_agg(t::text, E'\\n' order by t::text), '')) from {relation} t")
    return cur.fetchone()[0]


def record_run(warehouse_url: str, *, run_id: str, business_date: date, dag_run_state: str | None = None) -> dict:
    """Append this run's row to the ledger (whatever the run's outcome) and return its payload."""
    with closing(psycopg2.connect(warehouse_url, application_name="hospital_ops.audit")) as conn:
        with conn.cursor() as cur:
            ensure_audit_objects(cur)
            published = _published(cur, run_id)
            gate = _quality_gate(cur, run_id)
            payload = {
                "run_id": run_id,
                "business_date": business_date.isoformat(),
                "status": "published" if published else "failed",
                "dag_run_state": dag_run_state,
                "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "code_version": code_version(),
                "tool_versions": tool_versions(cur),
                "inputs": _inputs(cur, run_id, business_date),
                "quality_gate": gate,
                "published": published,
            }
            cur.execute("lock table audit.run_ledger in exclusive mode")  # one chain, one writer at a time
            cur.execute("select row_hash from audit.run_ledger order by seq desc limit 1")
            row = cur.fetchone()
            prev_hash = row[0] if row else GENESIS_HASH
            text = json.dumps(payload, ensure_ascii=False, sort_keys=True)
            cur.execute(
                "insert into audit.run_ledger (payload, business_date, prev_hash, row_hash) "
                f"values (%s::jsonb, %s, %s, {_HASH_SQL})",
                (text, business_date, prev_hash, prev_hash, text),
            )
            security.apply_grants(cur)
        conn.commit()
    log.info("run ledger: %s %s recorded as %s", business_date, run_id, payload["status"])
    return payload


def verify(conn) -> VerifyResult:  # type: ignore[no-untyped-def]
    """Recompute the chain from the first row; name the first row whose hashes do not hold."""
    with conn.cursor() as cur:
        cur.execute(
            "select seq, run_id, prev_hash, row_hash, "
            "encode(sha256(convert_to(prev_hash || payload::text, 'UTF8')), 'hex'), "
            "business_date::text = payload ->> 'business_date' "
            "from audit.run_ledger order by seq"
        )
        expected_prev = GENESIS_HASH
        rows = 0
        for seq, run_id, prev_hash, row_hash, recomputed, date_matches in cur:
            rows += 1
            if not date_matches:
                return VerifyResult(rows, expected_prev, seq,
                                    f"row {seq} (run {run_id}) was altered: its business_date differs from its payload")
            if prev_hash != expected_prev:
                return VerifyResult(rows, expected_prev, seq,
                                    f"row {seq} (run {run_id}) does not follow the row before it: a row was "
                                    "inserted, deleted or its previous-hash edited")
            if recomputed != row_hash:
                return VerifyResult(rows, expected_prev, seq,
                                    f"row {seq} (run {run_id}) was altered: its content no longer matches its hash")
            expected_prev = row_hash
    return VerifyResult(rows, expected_prev)
