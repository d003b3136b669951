"""A verdict per batch: a night's batch of a source entity that the quality gate rejected is held out of
everything published until it is corrected or explicitly accepted, while later good nights publish.

- The gate appends a verdict for each raw table whose batch it validated (`record_gate_verdicts`):
  `rejected` with the failed expectations, or `passed`.
- `raw._batch_verdicts` (made by the migrations, hospital_ops.migrate) is append-only (a trigger refuses
  UPDATE and DELETE); the latest verdict of a (source, entity, batch date) decides. A batch is held while that verdict is `rejected`
  (`raw._held_batches`). It is released by a rerun of that night whose batch passes the gate (the
  source corrected its delivery and the night was run again), by a later batch that passes and
  re-delivers every business key of the held one (verdict `superseded`: nothing of the held batch
  would reach staging anyway), or by a person
  (`hospital-ops batches accept <source> <date> --by WHO --note WHY`, verdict `accepted`).
- Every staging model reads raw through the dbt macro `latest_version`, which leaves held batches out
  (one place). Incremental staging tables had already merged the batch the night the gate rejected it
  (dbt builds before the gate validates), so when the set of held batches changes, the next marts build
  is a full refresh (`marts_full_refresh_needed` / `record_held_set_applied`, called by
  dbt_runner). A released batch is picked up by that rebuild.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from hospital_ops.db import fetch_one

if TYPE_CHECKING:
    from psycopg2.extensions import connection as PgConnection
    from psycopg2.extensions import cursor as PgCursor

log = logging.getLogger(__name__)

VERDICTS = "raw._batch_verdicts"
HELD = "raw._held_batches"
# decided_by of a verdict a dbt test's failing rows gave (hold_failed_tests)
DBT_TEST = "dbt test"
APPLIED = "raw._held_batches_applied"

class BatchError(RuntimeError):
    """A verdict that cannot be recorded (nothing held to accept, no reason given)."""


def record_gate_verdicts(conn: PgConnection, results: Iterable[dict], raw_tables: Iterable[str], *,
                         run_id: str, business_date: date) -> list[tuple[str, str, str]]:
    """Append the gate's verdict on tonight's batch of each raw table it validated (`raw.<source>__<entity>`);
    return the rejected ones as (source, entity, reasons)."""
    failures: dict[str, list[str]] = {}
    for result in results:
        if not result["success"]:
            column = f" on {result['column_name']}" if result.get("column_name") else ""
            failures.setdefault(result["target_table"], []).append(f"{result['expectation_type']}{column}")
    rows, rejected = [], []
    for table in sorted(set(raw_tables)):
        schema, name = table.split(".")
        if schema != "raw" or "__" not in name:
            continue
        source, entity = name.split("__", 1)
        reasons = "; ".join(sorted(set(failures.get(table, []))))[:1000] or None
        verdict = "rejected" if table in failures else "passed"
        rows.append((source, entity, business_date, verdict, reasons, "quality gate", run_id))
        if verdict == "rejected":
            rejected.append((source, entity, reasons or ""))
    try:
        with conn.cursor() as cur:
            # a rerun of the gate on an unchanged batch says the same again: only a changed verdict is appended
            # and a batch a dbt test holds (the marts build, before the gate) stays held when the gate passes it
            for row in rows:
                cur.execute(
                    f"insert into {VERDICTS} (source, entity, batch_date, verdict, reasons, decided_by, run_id) "
                    "select %s, %s, %s, %s, %s, %s, %s from (select null) one "
                    f"left join lateral (select verdict, decided_by from {VERDICTS} "
                    "  where source = %s and entity = %s and batch_date = %s "
                    "  order by decided_at desc limit 1) latest on true "
                    "where %s is distinct from latest.verdict "
                    "  and not coalesce(%s = 'passed' and latest.verdict = 'rejected' and latest.decided_by = %s, false)",
                    (*row, row[0], row[1], row[2], row[3], row[3], DBT_TEST))
            for source, entity, _batch_date, verdict, *_ in rows:
                if verdict == "passed":
                    _release_superseded(cur, source, entity, business_date, run_id)
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    if rejected:
        log.error("held out of publication until corrected or accepted: %s",
                  ", ".join(f"{s}.{e} batch {business_date}" for s, e, _ in rejected))
    return rejected


def _release_superseded(cur: PgCursor, source: str, entity: str, business_date: date, run_id: str) -> None:
    """Release the earlier held batches of this entity whose every business key tonight's passed batch
    re-delivers (a corrected delivery replaces it)."""
    from hospital_ops.sources import LANDED_SOURCES as SOURCES

    try:
        spec = SOURCES[source].entity(entity)
    except KeyError:
        return
    keys = ", ".join(spec.column(name).raw_name for name in spec.business_key)
    table = f"raw.{spec.raw_table}"
    cur.execute(
        f"select batch_date from {HELD} h where source = %s and entity = %s and batch_date < %s "
        f"and not exists (select {keys} from {table} where _batch_date = h.batch_date "
        f"                except select {keys} from {table} where _batch_date = %s)",
        (source, entity, business_date, business_date))
    for (held_date,) in cur.fetchall():
        cur.execute(f"insert into {VERDICTS} (source, entity, batch_date, verdict, reasons, decided_by, run_id) "
                    "values (%s, %s, %s, 'superseded', %s, 'quality gate', %s)",
                    (source, entity, held_date, f"every row re-delivered by batch {business_date}", run_id))
        log.info("%s.%s batch %s released: superseded by batch %s", source, entity, held_date, business_date)


def accept(conn: PgConnection, source: str, batch_date: date, *, by: str, note: str) -> list[str]:
    """A person accepts a held batch as it is (recorded append-only with who and why); return the entities
    released. The next night's build takes it."""
    if not by.strip() or not note.strip():
        raise BatchError("accepting a held batch needs --by (who) and --note (why)")
    with conn.cursor() as cur:
        cur.execute(f"select entity from {HELD} where source = %s and batch_date = %s order by entity",
                    (source, batch_date))
        entities = [row[0] for row in cur.fetchall()]
        if not entities:
            conn.rollback()
            raise BatchError(f"no held batch of {source} for {batch_date} (see hospital-ops batches list)")
        for entity in entities:
            cur.execute(f"insert into {VERDICTS} (source, entity, batch_date, verdict, note, decided_by) "
                        "values (%s, %s, %s, 'accepted', %s, %s)", (source, entity, batch_date, note, by))
    conn.commit()
    return entities


def held_batches(cur: PgCursor) -> list[dict]:
    cur.execute("select to_regclass(%s) is not null", (HELD,))
    if not fetch_one(cur)[0]:
        return []
    cur.execute(f"select source, entity, batch_date, reasons, held_since from {HELD} order by batch_date, source, entity")
    return [{"source": s, "entity": e, "batch_date": d.isoformat(), "reasons": r or "", "held_since": h.isoformat()}
            for s, e, d, r, h in cur.fetchall()]


def _held_set(cur: PgCursor) -> str:
    cur.execute(f"select coalesce(string_agg(raw_table || ' ' || batch_date, ',' order by raw_table, batch_date), '') "
                f"from {HELD}")
    return hashlib.sha256(fetch_one(cur)[0].encode()).hexdigest()


def marts_full_refresh_needed(conn: PgConnection) -> str | None:
    """The current held set's signature when it differs from the one the last marts build applied (the
    incremental staging tables must then be rebuilt), else None."""
    with conn.cursor() as cur:
        cur.execute("select to_regclass(%s) is not null", (HELD,))
        if not fetch_one(cur)[0]:
            return None
        current = _held_set(cur)
        cur.execute(f"select held_set from {APPLIED} order by applied_at desc limit 1")
        row = cur.fetchone()
    conn.commit()
    applied = row[0] if row else _EMPTY_SET
    return None if current == applied else current


_EMPTY_SET = hashlib.sha256(b"").hexdigest()


def record_held_set_applied(conn: PgConnection, held_set: str) -> None:
    with conn.cursor() as cur:
        cur.execute(f"insert into {APPLIED} (held_set) values (%s)", (held_set,))
    conn.commit()


# ------------------------------------------------------------------- a batch a dbt test rejected


@dataclass(frozen=True)
class FailedTest:
    """A dbt test that failed in the marts build, as tracing needs it (from dbt's result and manifest)."""

    name: str
    model_relation: str | None  # the tested model ("db"."schema"."name"); None for a singular test
    failures_relation: str | None  # the view dbt kept its failing rows in (store_failures, dbt_project.yml)
    column_name: str | None  # the tested column of a column test


# dbt's built-in generic tests rename the tested column in their failing rows (unique, accepted_values,
# relationships); every other column of a failing row that the model also has is matched by name
_TESTED_COLUMN_ALIASES = ("unique_field", "value_field", "from_field")
# the lineage columns every staging model keeps from raw (_source_file, _batch_date): a failing row
# carrying them names its file and batch, which raw._load_files maps to (source, entity, batch)
LINEAGE_FILE, LINEAGE_BATCH = "source_file", "landed_batch_date"


def _columns(cur: PgCursor, relation: str) -> list[str]:
    cur.execute("select attname from pg_attribute where attrelid = to_regclass(%s) and attnum > 0 "
                "and not attisdropped order by attnum", (relation,))
    return [row[0] for row in cur.fetchall()]


def _traced_files(cur: PgCursor, test: FailedTest) -> tuple[str | None, list[tuple[str, date | None]]]:
    """The (source file, batch) of each row behind a failing test's failing rows; or why there are none."""
    if test.model_relation is None:
        return "a rule over several models (a singular test), not about rows of one file", []
    model = _columns(cur, test.model_relation)
    if LINEAGE_FILE not in model:
        return f"its model {test.model_relation} carries no {LINEAGE_FILE} (a mart-level rule)", []
    if not test.failures_relation or not _columns(cur, test.failures_relation):
        return "dbt kept no failing rows for it (store_failures)", []
    failing = _columns(cur, test.failures_relation)
    batch = f"{{}}.{LINEAGE_BATCH}" if LINEAGE_BATCH in model else "null::date"
    if LINEAGE_FILE in failing:  # the test keeps whole rows (not_null, expression_is_true)
        sql = (f"select distinct f.{LINEAGE_FILE}, {batch.format('f') if LINEAGE_BATCH in failing else 'null::date'} "
               f"from {test.failures_relation} f")
    else:  # rows of the model that match the failing rows on the columns the test kept
        pairs = [(column, column) for column in failing if column in model]
        if test.column_name and test.column_name in model:
            pairs += [(test.column_name, alias) for alias in _TESTED_COLUMN_ALIASES if alias in failing]
        if not pairs:
            return "its failing rows keep no column of its model", []
        match = " and ".join(f'm."{m}"::text is not distinct from f."{f}"::text' for m, f in pairs)
        sql = (f"select distinct m.{LINEAGE_FILE}, {batch.format('m')} from {test.model_relation} m "
               f"where exists (select 1 from {test.failures_relation} f where {match})")
    cur.execute(sql)
    return None, cur.fetchall()


def trace_failed_tests(cur: PgCursor, tests: Iterable[FailedTest], *, published_through: date | None,
                       tonight: date | None = None) -> tuple[dict[tuple[str, str, date], list[str]], list[str]]:
    """Trace each failing dbt test's failing rows to the raw batches they came from: return the batches
    to hold (source, entity, batch date) → the tests that rejected them, and the tests that could not be
    traced, with why. Only a batch not yet published can be held (after the newest published night, or
    tonight's own batch, which a rerun of the newest night has just landed again): a failure that only
    rows already published explain is not tonight's delivery's (a new test, or a change in another
    table), and stops the night."""
    held: dict[tuple[str, str, date], list[str]] = {}
    untraced: list[str] = []
    for test in tests:
        why, files = _traced_files(cur, test)
        if why is None:
            cur.execute(
                "select distinct lf.source, lf.entity, lf.batch_date from raw._load_files lf "
                "join unnest(%s::text[], %s::date[]) as t(source_file, batch_date) "
                "  on lf.source_file = t.source_file and (t.batch_date is null or lf.batch_date = t.batch_date) "
                "where %s::date is null or lf.batch_date > %s::date or lf.batch_date = %s::date order by 1, 2, 3",
                ([f for f, _ in files], [b for _, b in files], published_through, published_through, tonight))
            found = cur.fetchall()
            if not found:
                why = (f"its {len(files)} failing source file(s) are all in batches already published"
                       if files else "no failing row of its model came from a loaded file")
            for key in found:
                held.setdefault(key, []).append(test.name)
        if why is not None:
            untraced.append(f"{test.name}: {why}")
    return held, untraced


def hold_failed_tests(conn: PgConnection, tests: list[FailedTest], *, run_id: str | None,
                      business_date: date | None = None) -> tuple[list[tuple[str, str, date]], list[str]]:
    """Hold the batches behind the marts build's failing dbt tests, as a gate rejection holds one
    (verdict `rejected`, decided by `dbt test`), when every failing test traces to a batch not yet
    published; return the batches held and the tests not traced. When any is not traced, nothing is
    held: the night stops for a person to look."""
    try:
        with conn.cursor() as cur:
            cur.execute("select to_regclass('audit.publications') is not null")
            published_through = None
            if fetch_one(cur)[0]:
                cur.execute("select max(business_date) from audit.publications")
                published_through = fetch_one(cur)[0]
            held, untraced = trace_failed_tests(cur, tests, published_through=published_through, tonight=business_date)
            if untraced or not held:
                conn.rollback()
                return [], untraced
            for (source, entity, batch_date), names in sorted(held.items()):
                cur.execute(f"insert into {VERDICTS} (source, entity, batch_date, verdict, reasons, decided_by, run_id) "
                            "values (%s, %s, %s, 'rejected', %s, %s, %s)",
                            (source, entity, batch_date, ("dbt test " + "; dbt test ".join(sorted(names)))[:1000],
                             DBT_TEST, run_id))
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    log.error("held out of publication until corrected or accepted (dbt tests failed on their rows): %s",
              ", ".join(f"{s}.{e} batch {d}" for s, e, d in sorted(held)))
    return sorted(held), []


def release_redelivered(conn: PgConnection) -> list[tuple[str, str, date]]:
    """Release, for testing again, each batch a dbt test holds that was delivered again since (a rerun of
    its night with the source's corrected files): verdict `superseded`. dbt tests see only what staging
    shows, so a held batch is tested again only once released; if it fails again, it is held again."""
    with conn.cursor() as cur:
        cur.execute("select to_regclass(%s) is not null and to_regclass('raw._load_files') is not null", (HELD,))
        if not fetch_one(cur)[0]:
            conn.commit()
            return []
        cur.execute(
            f"select h.source, h.entity, h.batch_date from {HELD} h "
            f"join lateral (select decided_by, decided_at from {VERDICTS} v where v.source = h.source "
            "  and v.entity = h.entity and v.batch_date = h.batch_date order by decided_at desc limit 1) latest on true "
            "where latest.decided_by = %s and exists (select 1 from raw._load_files lf where lf.source = h.source "
            "  and lf.entity = h.entity and lf.batch_date = h.batch_date and lf.loaded_at > latest.decided_at) "
            "order by 1, 2, 3", (DBT_TEST,))
        released = cur.fetchall()
        for source, entity, batch_date in released:
            cur.execute(f"insert into {VERDICTS} (source, entity, batch_date, verdict, reasons, decided_by) "
                        "values (%s, %s, %s, 'superseded', %s, %s)",
                        (source, entity, batch_date, "delivered again by a rerun of its night: tested again", DBT_TEST))
            log.info("%s.%s batch %s delivered again: released to be tested again", source, entity, batch_date)
    conn.commit()
    return released
