"""A verdict per batch: a night's batch of a source entity that the quality gate rejected is held out of
everything published until it is corrected or explicitly accepted, while later good nights publish.

- The gate appends a verdict for each raw table whose batch it validated (`record_gate_verdicts`):
  `rejected` with the failed expectations, or `passed`.
- `raw._batch_verdicts` is append-only (a trigger refuses UPDATE and DELETE); the latest verdict of a
  (source, entity, batch date) decides. A batch is held while that verdict is `rejected`
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
from datetime import date
from typing import TYPE_CHECKING

from hospital_ops.db import fetch_one

if TYPE_CHECKING:
    from psycopg2.extensions import connection as PgConnection
    from psycopg2.extensions import cursor as PgCursor

log = logging.getLogger(__name__)

VERDICTS = "raw._batch_verdicts"
HELD = "raw._held_batches"
APPLIED = "raw._held_batches_applied"

_DDL = f"""
create schema if not exists raw;
create table if not exists {VERDICTS} (
    source text not null, entity text not null, batch_date date not null,
    verdict text not null check (verdict in ('passed', 'rejected', 'accepted', 'superseded')),
    reasons text, note text, decided_by text not null, run_id text,
    decided_at timestamptz not null default clock_timestamp());
create or replace function raw._batch_verdicts_append_only() returns trigger language plpgsql as $fn$
begin
    raise exception 'raw._batch_verdicts is append-only: record a new verdict instead';
end
$fn$;
create or replace trigger batch_verdicts_append_only before update or delete or truncate on {VERDICTS}
    for each statement execute function raw._batch_verdicts_append_only();
create or replace view {HELD} as
select source, entity, source || '__' || entity as raw_table, batch_date, reasons, decided_at as held_since, run_id
from (select distinct on (source, entity, batch_date) *
      from {VERDICTS} order by source, entity, batch_date, decided_at desc) latest
where verdict = 'rejected';
create table if not exists {APPLIED} (
    held_set text not null, applied_at timestamptz not null default now());
"""


class BatchError(RuntimeError):
    """A verdict that cannot be recorded (nothing held to accept, no reason given)."""


def ensure_verdict_objects(cur: PgCursor) -> None:
    """Create the verdict table, its append-only trigger, the held-batches view (idempotent)."""
    cur.execute("select pg_advisory_xact_lock(hashtext('hospital_ops.raw._batch_verdicts'))")
    cur.execute("select to_regclass(%s) is not null", (HELD,))
    if not fetch_one(cur)[0]:
        cur.execute(_DDL)


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
            ensure_verdict_objects(cur)
            # a rerun of the gate on an unchanged batch says the same again: only a changed verdict is appended
            for row in rows:
                cur.execute(
                    f"insert into {VERDICTS} (source, entity, batch_date, verdict, reasons, decided_by, run_id) "
                    "select %s, %s, %s, %s, %s, %s, %s where %s is distinct from ("
                    f"  select verdict from {VERDICTS} where source = %s and entity = %s and batch_date = %s "
                    "  order by decided_at desc limit 1)",
                    (*row, row[3], row[0], row[1], row[2]))
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
    from hospital_ops.sources import SOURCES

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
        ensure_verdict_objects(cur)
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
