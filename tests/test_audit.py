"""Auditors and security: the hash-chained run ledger, point-in-time history, roles, and the
queries in docs/auditors.md — all against real nightly runs on a real PostgreSQL."""

from __future__ import annotations

import re
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest

from hospital_ops import security
from hospital_ops.audit import relation_digest, verify
from nightly_runs import NIGHTS, consortium_runs, query
from vendor_files import read_workbook

pytestmark = pytest.mark.e2e

DOC = Path(__file__).resolve().parents[1] / "docs" / "auditors.md"


@pytest.fixture(scope="module")
def consortium(tmp_path_factory, fresh_database, role_url, admin_database_url):
    with consortium_runs(tmp_path_factory, fresh_database) as result:
        assert all(run.succeeded for run in result.runs), [(r.business_date, r.failed_tasks) for r in result.runs]
        result.role_url = lambda role: role_url(result.url, role)
        result.admin_url = admin_database_url(result.url)
        yield result


def as_role(consortium, role: str) -> str:
    """The same database, logged in as another role (with its password)."""
    return consortium.role_url(role)


# --------------------------------------------------------------------------------------- run ledger


def test_every_night_is_in_the_ledger_with_its_inputs_and_publication(consortium) -> None:
    rows = query(consortium.url, "select seq, business_date, status, payload from audit.run_ledger order by seq")
    closing_rows = [r for r in rows if r[2] != "started"]
    assert [r[1] for r in closing_rows] == NIGHTS
    assert all(status == "published" for _, _, status, _ in closing_rows)
    started = {payload["run_id"]: seq for seq, _, status, payload in rows if status == "started"}
    for seq, business_date, _, payload in closing_rows:
        # each night's started row comes first, and its closing row names it
        assert payload["closes_seq"] == started[payload["run_id"]] < seq
        files = query(consortium.url, "select source_file, file_sha256, rows_read from raw._load_files "
                                      "where batch_date = %s order by source, source_file", (business_date,))
        assert [(i["file"], i["sha256"], i["rows_read"]) for i in payload["inputs"]] == files
        assert payload["quality_gate"]["ran"] and payload["quality_gate"]["failed"] == 0
        assert payload["code_version"] and payload["tool_versions"]["dbt-core"]
    assert query(as_role(consortium, security.AUDITOR), "select * from audit.open_runs") == []


def test_published_digests_prove_the_live_tables_unchanged(consortium) -> None:
    (payload,), = query(consortium.url, "select payload from audit.run_ledger order by seq desc limit 1")
    with closing(psycopg2.connect(consortium.url)) as conn, conn.cursor() as cur:
        for item in payload["published"]:
            assert relation_digest(cur, item["relation"]) == item["content_md5"], item["relation"]


def test_verify_accepts_the_untouched_chain_as_the_auditor(consortium) -> None:
    with closing(psycopg2.connect(as_role(consortium, security.AUDITOR))) as conn:
        result = verify(conn)
    assert result.ok and result.rows == 2 * len(NIGHTS), result.problem  # a started and a closing row a night


@pytest.mark.parametrize("tampering, bad_row", [
    ("update audit.run_ledger set payload = jsonb_set(payload, '{inputs,0,rows_read}', '1') where seq = 2", 2),
    ("update audit.run_ledger set business_date = business_date - 1 where seq = 1", 1),
    ("delete from audit.run_ledger where seq = 2", 3),
    (("update audit.run_ledger set payload = jsonb_set(payload, '{status}', '\"failed\"'), "
     "row_hash = encode(sha256(convert_to(prev_hash || jsonb_set(payload, '{status}', '\"failed\"')::text, "
     "'UTF8')), 'hex') where seq = 1"), 2),  # re-hashing the edited row breaks the next link
])
def test_verify_names_the_first_altered_row(consortium, tampering: str, bad_row: int) -> None:
    # only the superuser can disable the trigger now (the writer cannot: see below)
    with closing(psycopg2.connect(consortium.admin_url)) as conn:
        with conn.cursor() as cur:
            cur.execute("alter table audit.run_ledger disable trigger user")  # what a determined editor does
            cur.execute(tampering)
        result = verify(conn)
        conn.rollback()
    assert not result.ok and result.first_bad_seq == bad_row, result.problem


_NEWEST_DELETED = "delete from audit.run_ledger where seq = (select max(seq) from audit.run_ledger)"
_REWRITTEN = """
with recursive chain as (
    select seq, jsonb_set(payload, '{status}', '"failed"') as payload, prev_hash,
           encode(sha256(convert_to(prev_hash || jsonb_set(payload, '{status}', '"failed"')::text, 'UTF8')), 'hex')
               as row_hash
    from audit.run_ledger where seq = 2
    union all
    select l.seq, l.payload, c.row_hash, encode(sha256(convert_to(c.row_hash || l.payload::text, 'UTF8')), 'hex')
    from audit.run_ledger l join chain c on l.seq = c.seq + 1
)
update audit.run_ledger l set payload = c.payload, prev_hash = c.prev_hash, row_hash = c.row_hash
from chain c where l.seq = c.seq"""


@pytest.mark.parametrize("tampering, problem", [
    (_NEWEST_DELETED, "shrank"),
    ("truncate audit.run_ledger", "empty"),
    (_REWRITTEN, "rewritten"),  # a row and every later hash recomputed: the chain holds, the anchor does not
    (("select audit.append_run(jsonb_build_object('run_id', 'forged', 'status', 'published', "
     "'business_date', current_date::text), current_date)"), "appended without the pipeline's anchor"),
])
def test_verify_holds_the_head_against_the_anchor_outside_the_database(consortium, tampering, problem) -> None:
    with closing(psycopg2.connect(consortium.admin_url)) as conn:
        with conn.cursor() as cur:
            cur.execute("alter table audit.run_ledger disable trigger user")
            cur.execute(tampering)
            if tampering is _REWRITTEN:
                assert verify(conn, anchor=False).ok  # the chain alone cannot tell
        result = verify(conn)
        conn.rollback()
    assert not result.ok and problem in result.problem, result.problem


def test_a_forged_anchor_is_refused(consortium, tmp_path) -> None:
    import json

    from hospital_ops.audit import anchor_path, read_anchor

    with closing(psycopg2.connect(consortium.url)) as conn, conn.cursor() as cur:
        cur.execute("select current_database()")
        database = cur.fetchone()[0]
    anchor = read_anchor(database)
    forged = dict(anchor, seq=anchor["seq"] - 2, rows=anchor["rows"] - 2, row_hash="0" * 64)
    with closing(psycopg2.connect(as_role(consortium, security.AUDITOR))) as conn:
        result = verify(conn, anchor=forged)
    assert not result.ok and "not signed" in result.problem
    assert json.loads(anchor_path(database).read_text()) == anchor


@pytest.mark.parametrize("statement", [
    "update audit.run_ledger set business_date = business_date",
    "delete from audit.run_ledger",
    "truncate audit.run_ledger",
    "insert into audit.run_ledger (payload, business_date, prev_hash, row_hash) values ('{}', current_date, 'x', 'y')",
    "alter table audit.run_ledger disable trigger user",
    "drop trigger run_ledger_append_only on audit.run_ledger",
    "create or replace function audit.refuse_change() returns trigger language plpgsql as $$ begin return old; end $$",
    ("create or replace function audit.append_run(p jsonb, d date) returns table (ledger_seq bigint, ledger_hash text, "
    "ledger_rows bigint) language sql as $$ select 1::bigint, ''::text, 1::bigint $$"),
    "drop table audit.run_ledger",
    "alter table audit.run_ledger owner to hospital_ops_writer",
    "drop schema audit cascade",
    "lock table audit.run_ledger in exclusive mode",
])
def test_the_writer_cannot_rewrite_the_ledger_or_its_protection(consortium, statement: str) -> None:
    with closing(psycopg2.connect(consortium.url)) as conn, conn.cursor() as cur:
        with pytest.raises(psycopg2.Error) as raised:
            cur.execute(statement)
        assert isinstance(raised.value, psycopg2.errors.InsufficientPrivilege) or "append-only" in str(raised.value)


def test_the_action_trail_refuses_edits(consortium) -> None:
    with closing(psycopg2.connect(consortium.url)) as conn, conn.cursor() as cur:
        cur.execute("insert into ops.warning_actions (warning_id, action, actor, note) "
                    "values ('w', 'acknowledge', 'a', 'n')")
        with pytest.raises(psycopg2.Error, match="append-only"):
            cur.execute("delete from ops.warning_actions")


# ------------------------------------------------------------------------------------- history


def test_a_correction_after_closing_is_a_new_version_not_an_edit(consortium) -> None:
    s = consortium.generated.scenarios["corrected_report"]
    first = read_workbook(consortium.generated.inbox_dir / s["revision_1"]["file"])
    second = read_workbook(consortium.generated.inbox_dir / s["revision_2"]["file"])
    complaints = [int(dict(zip(book[0], book[1][0], strict=True))["complaints_received"]) for book in (first, second)]
    month = f"{s['month']}-01"

    def complaints_as_published(night) -> list[tuple]:
        return query(consortium.url, "select complaints from audit.vendor_month_kpis_as_of(%s, "
                                     "audit.published_as_of(%s)) where vendor_id = %s", (month, night, s["vendor_id"]))

    assert complaints_as_published(NIGHTS[0]) == [(complaints[0],)]
    assert complaints_as_published(NIGHTS[-1]) == [(complaints[1],)]
    versions = query(consortium.url, "select complaints, dbt_valid_to is null from snapshots.snp_vendor_month_kpis_closed "
                                     "where vendor_id = %s and month = %s order by dbt_valid_from",
                     (s["vendor_id"], month))
    assert versions == [(complaints[0], False), (complaints[1], True)]


def test_rating_as_of_a_date_carries_its_evidence(consortium) -> None:
    vendor = consortium.generated.scenarios["privacy_leak"]["vendor_id"]
    ratings = query(as_role(consortium, security.AUDITOR),
                    "select rating_month, credit_rating, evidence from audit.vendor_rating_as_of(%s, "
                    "audit.published_as_of(%s)) order by rating_month", (vendor, NIGHTS[-1]))
    live = query(consortium.url, "select rating_month, credit_rating, evidence from scoring.vendor_credit_rating "
                                 "where vendor_id = %s order by rating_month", (vendor,))
    assert ratings == live and ratings[-1][1] == "C" and ratings[-1][2]["warnings"]["red"] == 1


# ------------------------------------------------------------------------------------------ roles


def _can(url: str, sql: str) -> bool:
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        try:
            cur.execute(sql)
            return True
        except psycopg2.errors.InsufficientPrivilege:
            return False


@pytest.mark.parametrize("role, relation, allowed", [
    (security.BI_READER, "marts.fct_vendor_month_kpis", True),
    (security.BI_READER, "scoring.vendor_risk_warnings", True),
    (security.BI_READER, "raw.vendor__staff_roster", False),
    (security.BI_READER, "raw._quarantine", False),
    (security.BI_READER, "staging.stg_vendor__registry", False),
    (security.BI_READER, "marts_build.fct_vendor_month_kpis", False),
    (security.BI_READER, "snapshots.snp_vendor_credit_rating", False),
    (security.BI_READER, "audit.run_ledger", False),
    # the views over the platform's bookkeeping are the writer's, like all of staging
    (security.BI_READER, "staging.stg_platform__run_ledger", False),
    (security.BI_READER, "staging.stg_platform__validation_results", False),
    (security.AUDITOR, "snapshots.snp_vendor_credit_rating", True),
    (security.AUDITOR, "audit.run_ledger", True),
    (security.AUDITOR, "audit.warning_actions", True),
    (security.AUDITOR, "dq.validation_results", True),
    (security.AUDITOR, "raw.vendor__staff_roster", False),
    (security.AUDITOR, "raw.vendor__registry", False),
    (security.AUDITOR, "marts.fct_vendor_month_kpis", False),
    (security.AUDITOR, "ops.warning_actions", False),
    (security.WRITER, "raw.vendor__staff_roster", True),
    (security.WRITER, "staging.stg_platform__run_ledger", True),
    (security.AUDITOR, "staging.stg_platform__run_ledger", False),
])
def test_each_role_reads_exactly_its_schemas(consortium, role: str, relation: str, allowed: bool) -> None:
    assert _can(as_role(consortium, role), f"select * from {relation} limit 1") is allowed


@pytest.mark.parametrize("role, statement", [
    (security.BI_READER, "insert into marts.dim_vendors (vendor_id) values ('X')"),
    (security.BI_READER, "delete from scoring.vendor_risk_warnings"),
    (security.AUDITOR, ("insert into audit.run_ledger (payload, business_date, prev_hash, row_hash) "
                       "values ('{}', current_date, 'x', 'y')")),
    (security.AUDITOR, "update snapshots.snp_vendor_credit_rating set credit_rating = 'AAA'"),
    (security.AUDITOR, "create table audit.mine (x int)"),
])
def test_readers_cannot_write(consortium, role: str, statement: str) -> None:
    assert not _can(as_role(consortium, role), statement)


# -------------------------------------------------------------------------------- the auditors' doc


def _doc_queries() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_the_doc_has_queries() -> None:
    assert len(_doc_queries()) >= 10


@pytest.mark.parametrize("index", range(len(_doc_queries())))
def test_every_query_in_the_auditors_doc_runs_as_the_auditor(consortium, index: int) -> None:
    from hospital_ops.vendor_warnings import list_warnings, record_action

    if "warning_actions" in _doc_queries()[index] and not query(consortium.url, "select 1 from ops.warning_actions"):
        blue = next(w for w in list_warnings(consortium.url) if w["colour"] == "blue")
        record_action(consortium.url, blue["warning_id"], "acknowledge", actor="内审 李审计", note="sampled for audit")
    rows = query(as_role(consortium, security.AUDITOR), _doc_queries()[index])
    if "not success" in _doc_queries()[index]:
        return  # rightly empty on a clean consortium: running as the auditor is the point
    assert rows, f"query {index} returned nothing:\n{_doc_queries()[index]}"
