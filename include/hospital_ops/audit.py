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

The ledger is not the writer's (sql/run_ledger.sql): the table, its trigger and its function belong to
`hospital_ops_ledger`, a role nobody logs in as, and the writer appends only through the SECURITY
DEFINER function `audit.append_run`. Each run appends a "started" row first (`record_started`) and
a closing row at the end (`record_run`), so a night killed in between leaves an open row
(`audit.open_runs`).

What the database cannot prove on its own — that the newest rows were not removed, or the whole
chain rewritten by someone with the superuser's rights — is checked against an anchor kept outside
it: after every append the pipeline's process writes the new head (sequence, hash, row count) with
an HMAC-SHA256 under a key in `var/secrets/ledger_anchor.key` to `var/audit/<database>.anchor.json`.
No database role can read that key. `verify` (run as the auditor) fails on an empty ledger, a
broken chain, a ledger shorter than its anchor, a head that differs from it, or an anchor whose
HMAC does not hold.

The audit schema also holds the point-in-time functions auditors query (sql/audit_objects.sql).
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import os
import platform
import secrets
import subprocess
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import metadata
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg2

from hospital_ops import migrate, security
from hospital_ops.config import settings
from hospital_ops.db import fetch_one

if TYPE_CHECKING:
    from psycopg2.extensions import connection as PgConnection
    from psycopg2.extensions import cursor as PgCursor

log = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64


class LedgerNotInstalled(RuntimeError):
    pass


@dataclass
class VerifyResult:
    rows: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.first_bad_seq is None


def ensure_audit_objects(cur: PgCursor) -> None:
    """The auditors' point-in-time functions and views (as the writer; the ledger itself is setup's)."""
    cur.execute("select to_regprocedure('audit.append_run(jsonb, date)') is not null")
    if not fetch_one(cur)[0]:
        raise LedgerNotInstalled(
            "the run ledger is not installed in this database: run `hospital-ops warehouse start` (embedded) "
            "or `hospital-ops warehouse roles` with WAREHOUSE_ADMIN_URL (an external server) once, as setup")
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


def tool_versions(cur: PgCursor) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("dbt-core", "dbt-postgres", "great-expectations", "apache-airflow"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    cur.execute("show server_version")
    versions["postgresql"] = fetch_one(cur)[0]
    return versions


def _exists(cur: PgCursor, relation: str) -> bool:
    cur.execute("select to_regclass(%s) is not null", (relation,))
    return bool(fetch_one(cur)[0])


def _inputs(cur: PgCursor, run_id: str, business_date: date) -> list[dict]:
    if not _exists(cur, "raw._load_files"):
        return []
    cur.execute(
        "select source, entity, source_file, file_sha256, rows_read, rows_loaded, rows_quarantined "
        "from raw._load_files where batch_date = %s and run_id = %s order by source, source_file",
        (business_date, run_id),
    )
    names = ("source", "entity", "file", "sha256", "rows_read", "rows_loaded", "rows_quarantined")
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _quality_gate(cur: PgCursor, run_id: str) -> dict:
    if not _exists(cur, "dq.validation_results"):
        return {"ran": False}
    cur.execute(
        "select count(*), count(*) filter (where not success), "
        "coalesce(jsonb_agg(jsonb_build_object('suite', suite, 'expectation', expectation_type, "
        "'column', column_name)) filter (where not success), '[]') "
        "from dq.validation_results where run_id = %s",
        (run_id,),
    )
    total, failed, failures = fetch_one(cur)
    return {"ran": total > 0, "expectations": total, "failed": failed, "failures": failures}


def _published(cur: PgCursor, run_id: str) -> list[dict]:
    if not _exists(cur, "audit.publications"):
        return []
    cur.execute("select relation, row_count from audit.publications where run_id = %s order by relation", (run_id,))
    published = []
    for relation, rows in cur.fetchall():
        published.append({"relation": relation, "rows": rows, "content_md5": relation_digest(cur, relation)})
    return published


def relation_digest(cur: PgCursor, relation: str) -> str:
    """MD5 of a relation's rows in a fixed order: two identical publications have the same digest."""
    cur.execute(f"select md5(coalesce(string_agg(t::text, E'\\n' order by t::text), '')) from {relation} t")
    return fetch_one(cur)[0]


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
                "closes_seq": _open_seq(cur, run_id),
                "dag_run_state": dag_run_state,
                "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "code_version": code_version(),
                "tool_versions": tool_versions(cur),
                "inputs": _inputs(cur, run_id, business_date),
                "quality_gate": gate,
                "published": published,
            }
            head = _append(cur, payload, business_date)
            security.apply_grants(cur)
        conn.commit()
        write_anchor(_database(conn), head)
    log.info("run ledger: %s %s recorded as %s", business_date, run_id, payload["status"])
    return payload


def record_started(warehouse_url: str, *, run_id: str, business_date: date) -> dict:
    """Append the run's "started" row before anything else runs: a night killed before its closing
    row leaves this row open (audit.open_runs)."""
    with closing(psycopg2.connect(warehouse_url, application_name="hospital_ops.audit")) as conn:
        with conn.cursor() as cur:
            migrate.require_current(cur)  # a night on tables of another release would fail half-way
            ensure_audit_objects(cur)
            payload = {
                "run_id": run_id,
                "business_date": business_date.isoformat(),
                "status": "started",
                "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "code_version": code_version(),
            }
            head = _append(cur, payload, business_date)
            security.apply_grants(cur)  # the auditor reads audit.open_runs even if the night dies now
        conn.commit()
        write_anchor(_database(conn), head)
    log.info("run ledger: %s %s started (row %s)", business_date, run_id, head["seq"])
    return payload


def _open_seq(cur: PgCursor, run_id: str) -> int | None:
    cur.execute("select max(seq) from audit.run_ledger where run_id = %s and status = 'started'", (run_id,))
    return fetch_one(cur)[0]


def _append(cur: PgCursor, payload: dict, business_date: date) -> dict:
    text = json.dumps(payload, ensure_ascii=False, sort_keys=True)
    cur.execute("select ledger_seq, ledger_hash, ledger_rows from audit.append_run(%s::jsonb, %s)",
                (text, business_date))
    seq, row_hash, rows = fetch_one(cur)
    return {"seq": seq, "row_hash": row_hash, "rows": rows}


def _database(conn: PgConnection) -> str:
    with conn.cursor() as cur:
        cur.execute("select current_database()")
        return fetch_one(cur)[0]


# ------------------------------------------------------------------ the anchor outside the database


def _anchor_key() -> bytes:
    """The anchor's HMAC key, created once (0600) beside the warehouse passwords. The pipeline's
    process reads it; no database role can (it never enters the database)."""
    path = settings().var_dir / "secrets" / "ledger_anchor.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def anchor_path(database: str) -> Path:
    return settings().var_dir / "audit" / f"{database}.anchor.json"


def _anchor_mac(database: str, head: dict) -> str:
    message = f"{database}\n{head['seq']}\n{head['rows']}\n{head['row_hash']}".encode()
    return hmac.new(_anchor_key(), message, hashlib.sha256).hexdigest()


def write_anchor(database: str, head: dict) -> None:
    """Record the ledger's new head, signed, unless a later head is already recorded (two appends
    may finish in either order)."""
    path = anchor_path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = read_anchor(database)
        if current and current["seq"] >= head["seq"]:
            return
        record = {"database": database, "seq": head["seq"], "rows": head["rows"], "row_hash": head["row_hash"],
                  "hmac_sha256": _anchor_mac(database, head)}
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(record, indent=2))
        partial.replace(path)


def read_anchor(database: str) -> dict | None:
    path = anchor_path(database)
    return json.loads(path.read_text()) if path.exists() else None


def anchor_existing_head(cur: PgCursor, database: str) -> None:
    """At setup: a ledger an older release filled, which has no anchor yet, is anchored at its
    current head (from then on, its newest rows cannot go unnoticed)."""
    if read_anchor(database) is not None:
        return
    cur.execute("select seq, row_hash, (select count(*) from audit.run_ledger) from audit.run_ledger "
                "order by seq desc limit 1")
    row = cur.fetchone()
    if row:
        write_anchor(database, {"seq": row[0], "row_hash": row[1], "rows": row[2]})
        log.info("run ledger of %s anchored at its existing head (row %s)", database, row[0])


def forget_anchor(database: str) -> None:
    """A database dropped and created again starts a new ledger, and a new anchor."""
    anchor_path(database).unlink(missing_ok=True)


def verify(conn: PgConnection, *, anchor: dict | bool | None = True) -> VerifyResult:
    """Recompute the chain from the first row; name the first row whose hashes do not hold; then
    hold the head against the anchor kept outside the database (`anchor=True`: this database's
    anchor file; a dict: that anchor; False: the chain alone)."""
    with conn.cursor() as cur:
        cur.execute(
            "select seq, run_id, prev_hash, row_hash, "
            "encode(sha256(convert_to(prev_hash || payload::text, 'UTF8')), 'hex'), "
            "business_date::text = payload ->> 'business_date' "
            "from audit.run_ledger order by seq"
        )
        expected_prev = GENESIS_HASH
        rows = 0
        hashes: dict[int, str] = {}
        head_seq = None
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
            hashes[seq] = row_hash
            head_seq = seq
    if anchor is False:
        return VerifyResult(rows, expected_prev)
    if rows == 0:
        return VerifyResult(0, expected_prev, 0, "the run ledger is empty: every run appends to it, so its rows "
                                                 "were removed (or no night has ever run)")
    database = _database(conn)
    if anchor is True:
        anchor = read_anchor(database)
    if not anchor:
        return VerifyResult(rows, expected_prev, head_seq,
                            f"no anchor for database {database} ({anchor_path(database)}): the newest rows "
                            "cannot be checked")
    if not hmac.compare_digest(str(anchor.get("hmac_sha256", "")), _anchor_mac(database, anchor)):
        return VerifyResult(rows, expected_prev, head_seq,
                            f"the anchor {anchor_path(database)} is not signed by this pipeline's key")
    if rows < anchor["rows"] or anchor["seq"] not in hashes:
        return VerifyResult(rows, expected_prev, anchor["seq"],
                            f"the ledger shrank: the anchor records {anchor['rows']} rows up to row {anchor['seq']}, "
                            f"the ledger holds {rows} up to row {head_seq}")
    if hashes[anchor["seq"]] != anchor["row_hash"]:
        return VerifyResult(rows, expected_prev, anchor["seq"],
                            f"row {anchor['seq']} differs from the anchored head: the chain was rewritten")
    if head_seq != anchor["seq"] or rows != anchor["rows"]:
        return VerifyResult(rows, expected_prev, head_seq,
                            f"{rows - anchor['rows']} row(s) after the anchored head (row {anchor['seq']}) were "
                            "appended without the pipeline's anchor")
    return VerifyResult(rows, expected_prev)
