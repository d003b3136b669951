"""The warehouse's own tables under versioned migrations (hospital_ops.migrate).

A warehouse of the release before migrations (tests/fixtures/prev_release.dump: one night of that
release, made by tests/fixtures/make_prev_release.py, with its test-only ledger anchor and key) is
restored, upgraded and given the next night by the DAG: every row it held is still there, its
watermarks moved to the one watermark table and were honoured by that night, and the audit chain
verifies under its anchor. A new warehouse upgraded from nothing has the same schema; a second
upgrade changes nothing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from contextlib import closing
from datetime import date, datetime, time, timedelta
from pathlib import Path

import psycopg2
import pytest

from hospital_ops import migrate, security, warehouse
from hospital_ops.config import PROJECT_ROOT
from nightly_runs import query

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).resolve().parent / "fixtures"
DATABASE = "hospital_ops_prev_release"  # the anchor's HMAC covers the database's name
PREV_NIGHT = date(2026, 11, 22)
NEXT_NIGHT = PREV_NIGHT + timedelta(days=1)
OWNED = ("raw", "dq", "audit", "ops")
OLD_WATERMARKS = ("raw._sql_watermarks", "raw._extract_log")


def tables(url: str) -> list[str]:
    return [r[0] for r in query(url, "select format('%%I.%%I', n.nspname, c.relname) from pg_class c "
                                     "join pg_namespace n on n.oid = c.relnamespace "
                                     "where n.nspname = any(%s) and c.relkind in ('r', 'p') order by 1",
                                     (list(OWNED),))]


def columns(url: str, relation: str) -> list[str]:
    return [r[0] for r in query(url, "select attname from pg_attribute where attrelid = %s::regclass "
                                     "and attnum > 0 and not attisdropped order by attnum", (relation,))]


def rows(url: str, relation: str, names: list[str] | None = None) -> Counter:
    """A relation's rows as text, over `names` (the columns a table had before an upgrade added others)."""
    shown = "t::text" if names is None else "row(" + ", ".join(f't."{n}"' for n in names) + ")::text"
    return Counter(r[0] for r in query(url, f"select {shown} from {relation} t"))


def audit_object_names() -> set[str]:
    """What sql/audit_objects.sql (re)creates after each night (over dbt's relations), not migrated."""
    text = (PROJECT_ROOT / "include" / "hospital_ops" / "sql" / "audit_objects.sql").read_text(encoding="utf-8")
    return set(re.findall(r"create (?:or replace )?(?:view|function|trigger) (?:audit\.)?(\w+)", text))


def catalog(url: str) -> set[tuple]:
    """The fixed objects of the pipeline's schemas as the catalog describes them (owners included);
    the per-source raw tables (`<source>__<entity>`, made from the specs) and the auditors' per-night
    objects are left out."""
    skip = audit_object_names()
    out: set[tuple] = set()
    spec_table = r"^[a-z0-9_]+__[a-z0-9_]+$"
    for row in query(url, """
            select n.nspname, c.relname, c.relkind::text, pg_get_userbyid(c.relowner),
                   coalesce(obj_description(c.oid), ''),
                   coalesce((select string_agg(format('%%s %%s %%s %%s', a.attname,
                                                      format_type(a.atttypid, a.atttypmod),
                                                      a.attnotnull, coalesce(pg_get_expr(d.adbin, d.adrelid), '')),
                                               ', ' order by a.attnum)
                             from pg_attribute a left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
                             where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped), ''),
                   coalesce((select string_agg(pg_get_constraintdef(k.oid), '; ' order by pg_get_constraintdef(k.oid))
                             from pg_constraint k where k.conrelid = c.oid), ''),
                   coalesce((select string_agg(pg_get_triggerdef(t.oid), '; ' order by t.tgname)
                             from pg_trigger t where t.tgrelid = c.oid and not t.tgisinternal), ''),
                   case when c.relkind = 'v' then pg_get_viewdef(c.oid) else '' end
            from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where n.nspname = any(%s) and c.relkind in ('r', 'p', 'v', 'i')""", (list(OWNED),)):
        if not re.match(spec_table, row[1].split("__batch")[0].split("__loaded_at")[0]) and row[1] not in skip:
            out.add(("relation", *row))
    for row in query(url, """
            select n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), pg_get_userbyid(p.proowner),
                   p.prosecdef, md5(p.prosrc), coalesce(p.proacl::text, '')
            from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = any(%s)""", (list(OWNED),)):
        if row[1] not in skip:
            out.add(("function", *row))
    for row in query(url, "select nspname, pg_get_userbyid(nspowner) from pg_namespace where nspname = any(%s)",
                     (list(OWNED),)):
        out.add(("schema", *row))
    ledger_acl = query(url, "select relacl::text from pg_class where oid = 'audit.run_ledger'::regclass")[0]
    out.add(("ledger grants", *ledger_acl))
    return out


def _audit_name(entry: str) -> str | None:
    """The name of an audit schema's function or view in a `pg_restore --list` entry (or its ACL)."""
    found = re.search(r"(?:FUNCTION|VIEW|TABLE) audit (\w+)|ACL audit (?:FUNCTION|TABLE) (\w+)", entry)
    return (found.group(1) or found.group(2)) if found else None


def restore_previous_release(var_dir: Path) -> tuple[str, str]:
    """The fixture's warehouse, restored as it was (owners and grants), with its anchor in `var_dir`."""
    shutil.copytree(FIXTURES / "prev_release_var", var_dir, dirs_exist_ok=True)
    (var_dir / "secrets" / "ledger_anchor.key").chmod(0o600)
    admin = warehouse.admin_url()
    with closing(psycopg2.connect(admin)) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'drop database if exists "{DATABASE}" with (force)')
            cur.execute(f'create database "{DATABASE}" owner "{security.WRITER}"')
    admin_db = warehouse.with_database(admin, DATABASE)
    with closing(psycopg2.connect(admin_db)) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("revoke create on schema public from public")
            cur.execute(f'alter schema public owner to "{security.WRITER}"')
    # all but the auditors' views and functions over dbt's relations (snapshots, scoring: not in the dump),
    # which the writer re-creates at the next night's first ledger row (audit.ensure_audit_objects)
    pg_restore = warehouse.find_binaries().tool("pg_restore")
    listing = subprocess.run([pg_restore, "--list", str(FIXTURES / "prev_release.dump")], check=True,
                             capture_output=True, text=True).stdout.splitlines()
    derived = audit_object_names()
    keep = [line for line in listing if _audit_name(line) not in derived]
    (var_dir.parent / "restore.list").write_text("\n".join(keep) + "\n")
    restored = subprocess.run([pg_restore, "--exit-on-error", f"--dbname={admin_db}",
                               f"--use-list={var_dir.parent / 'restore.list'}", str(FIXTURES / "prev_release.dump")],
                              capture_output=True, text=True, check=False)
    assert restored.returncode == 0, restored.stderr
    return warehouse.with_database(warehouse.url(), DATABASE), admin_db


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory, fresh_database, role_url):
    """The previous release's warehouse: its contents, then migrated, then the next night run by the DAG."""
    from hospital_ops.airflow_local import run_night
    from hospital_ops_sim.his import create_his_database, generate_his
    from hospital_ops_sim.insurance import generate_insurance

    root = tmp_path_factory.mktemp("migration")
    var_dir = root / "var"
    url, admin_db = restore_previous_release(var_dir)
    his_url = fresh_database("mig_his")
    before = {relation: rows(admin_db, relation) for relation in tables(admin_db)}
    before_columns = {relation: columns(admin_db, relation) for relation in before}
    revision_before = migrate.current(admin_db)
    old_watermarks = (query(admin_db, "select source, entity, batch_date, max_updated_at, run_id, recorded_at "
                                      "from raw._sql_watermarks"),
                      query(admin_db, "select source, batch_date, run_id, folder_from, folder_to, files, extracted_at "
                                      "from raw._extract_log"))
    # the source, one day on: the same simulation with the next night's activity
    create_his_database(his_url)
    generate_his(his_url, end=NEXT_NIGHT, months=3, hospitals=1, scale=0.015, seed=5)
    generate_insurance(his_url, var_dir / "inbox", end=NEXT_NIGHT, seed=5)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("HOSPITAL_OPS_VAR_DIR", str(var_dir))
            patch.setenv("HOSPITAL_OPS_INBOX", str(var_dir / "inbox"))
            patch.setenv("WAREHOUSE_URL", url)
            patch.setenv("HIS_URL", his_url)
            patch.setenv("HOSPITAL_OPS_PSEUDONYM_KEY", "prev-release-test-key")
            revision = migrate.upgrade(admin_db)
            # over the columns each table had: a revision may add columns (with their defaults), never change a row
            after_upgrade = {relation: rows(admin_db, relation, before_columns.get(relation))
                             for relation in tables(admin_db)}
            run = run_night(NEXT_NIGHT, url)
            env = dict(os.environ, WAREHOUSE_AUDITOR_URL=role_url(url, security.AUDITOR))
        yield {"url": url, "admin": admin_db, "before": before, "before_columns": before_columns,
               "after_upgrade": after_upgrade,
               "revision_before": revision_before, "old_watermarks": old_watermarks, "revision": revision,
               "run": run, "env": env}
    finally:
        warehouse.drop_database(DATABASE)


def test_the_fixture_is_the_previous_release(upgraded) -> None:
    assert upgraded["revision_before"] is None  # never migrated
    assert set(OLD_WATERMARKS) <= set(upgraded["before"])
    assert all(upgraded["before"][t] for t in OLD_WATERMARKS)  # it had watermarks of both kinds to move


def test_upgrade_reaches_head_and_loses_nothing(upgraded) -> None:
    assert upgraded["revision"] == migrate.head()
    assert migrate.current(upgraded["admin"]) == migrate.head()
    after = upgraded["after_upgrade"]
    for relation, content in upgraded["before"].items():
        if relation in OLD_WATERMARKS:
            assert relation not in after
            continue
        assert after[relation] == content, relation  # the upgrade itself changes no row


def test_watermarks_moved_to_the_one_table(upgraded) -> None:
    moved = query(upgraded["admin"], "select source, entity, batch_date, watermark, taken_from, files, run_id, "
                                     "recorded_at from raw._watermarks where batch_date <= %s", (PREV_NIGHT,))
    sql_marks, folder_marks = upgraded["old_watermarks"]
    assert sql_marks and folder_marks
    assert sorted(moved) == sorted([(s, e, d, w, None, None, r, at) for s, e, d, w, r, at in sql_marks]
                                   + [(s, "drop_folders", d, None if to is None else datetime.combine(to, time()),
                                       fr, n, r, at) for s, d, r, fr, to, n, at in folder_marks])


def test_the_next_night_runs_on_the_migrated_warehouse_and_keeps_every_row(upgraded) -> None:
    run = upgraded["run"]
    assert run.succeeded, (run.failed_tasks, run.log_file)
    for relation, content in upgraded["after_upgrade"].items():
        missing = content - rows(upgraded["admin"], relation, upgraded["before_columns"].get(relation))
        assert not missing, f"{relation}: {sum(missing.values())} rows of the previous release lost"


def test_the_next_night_reads_from_the_migrated_watermarks(upgraded) -> None:
    admin = upgraded["admin"]
    # the HIS: tonight's lower bounds are the moved watermarks, so no version the previous night landed
    # is landed again (an entity with nothing new tonight has no rows in tonight's batch)
    marks = query(admin, "select entity, watermark from raw._watermarks where source = 'his' "
                         "and entity <> 'drop_folders' and batch_date = %s", (PREV_NIGHT,))
    assert marks and all(mark is not None for _, mark in marks)
    for entity, _ in marks:
        again = query(admin, f"select count(*) from raw.his__{entity} n join raw.his__{entity} p using (_row_hash) "
                             "where n._batch_date = %s and p._batch_date = %s", (NEXT_NIGHT, PREV_NIGHT))[0][0]
        assert again == 0, entity
    assert query(admin, "select count(*) from raw._watermarks where source = 'his' and entity <> 'drop_folders' "
                        "and batch_date = %s", (NEXT_NIGHT,))[0][0]  # and tonight's were recorded there
    # the file source: only drop folders after the moved watermark were taken
    (previous_last, tonight_first), = query(
        admin, "select (select watermark::date from raw._watermarks where source = 'insurance' and batch_date = %s), "
               "(select taken_from from raw._watermarks where source = 'insurance' and batch_date = %s)",
        (PREV_NIGHT, NEXT_NIGHT))
    assert previous_last is not None
    assert tonight_first is None or tonight_first > previous_last
    assert query(admin, "select to_regclass('raw._sql_watermarks'), to_regclass('raw._extract_log')") == [(None, None)]


def test_the_audit_chain_still_verifies(upgraded) -> None:
    ledger = query(upgraded["admin"], "select business_date, status from audit.run_ledger order by seq")
    assert len([r for r in ledger if r[0] == PREV_NIGHT]) == sum(
        1 for r in upgraded["before"]["audit.run_ledger"])  # the previous release's rows, then tonight's
    assert [r[1] for r in ledger if r[0] == NEXT_NIGHT][-1] == "published"
    result = subprocess.run([sys.executable, "-m", "hospital_ops.cli", "audit", "verify"], env=upgraded["env"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_new_warehouse_has_the_schema_of_the_upgraded_one(upgraded, fresh_database, admin_database_url) -> None:
    fresh = admin_database_url(fresh_database("mig_fresh"))  # created and upgraded from nothing
    assert migrate.current(fresh) == migrate.head()
    assert catalog(fresh) == catalog(upgraded["admin"])


def test_migrating_twice_is_a_no_op(fresh_database, admin_database_url) -> None:
    admin = admin_database_url(fresh_database("mig_twice"))
    first = catalog(admin)
    assert migrate.upgrade(admin) == migrate.head()
    assert catalog(admin) == first


def test_the_offline_sql_is_what_a_dba_applies() -> None:
    text = migrate.upgrade_sql()
    assert "create table raw._watermarks" in text.lower()
    assert "ops.alembic_version" in text
    assert f"UPDATE ops.alembic_version SET version_num='{migrate.head()}'" in text


def test_a_night_refuses_a_warehouse_not_migrated_to_this_release(fresh_database, admin_database_url, tmp_path,
                                                                 monkeypatch) -> None:
    from hospital_ops.audit import record_started

    url = fresh_database("mig_behind")
    monkeypatch.setenv("HOSPITAL_OPS_VAR_DIR", str(tmp_path / "var"))
    record_started(url, run_id="at-head", business_date=PREV_NIGHT)  # migrated: the night starts
    migrate.downgrade(admin_database_url(url), "0001_baseline")
    with pytest.raises(migrate.WarehouseNotMigrated, match="hospital-ops warehouse migrate"):
        record_started(url, run_id="behind", business_date=PREV_NIGHT)
    assert query(url, "select run_id from audit.run_ledger order by seq") == [("at-head",)]
