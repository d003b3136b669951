"""Supervisors' actions on vendor warnings: acknowledge (taken up) and resolve (closed after
rectification). Actions are appended to ops.warning_actions with who, when and why; the nightly
scoring reads the latest action of each warning into its status, so history is never edited."""

from __future__ import annotations

from contextlib import closing

import psycopg2

from hospital_ops.db import fetch_one

ACTIONS = ("acknowledge", "resolve")


class WarningActionError(RuntimeError):
    pass


def record_action(warehouse_url: str, warning_id: str, action: str, *, actor: str, note: str) -> None:
    if action not in ACTIONS:
        raise WarningActionError(f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
    if not actor.strip() or not note.strip():
        raise WarningActionError("an action needs who took it (--by) and why (--note)")
    with closing(psycopg2.connect(warehouse_url)) as conn, conn.cursor() as cur:
        cur.execute("select to_regclass('ops.warning_actions') is not null, "
                    "to_regclass('scoring.vendor_risk_warnings') is not null")
        has_actions, has_warnings = fetch_one(cur)
        if not (has_actions and has_warnings):
            raise WarningActionError("no warnings have been published yet: run a night first")
        cur.execute("select status from scoring.vendor_risk_warnings where warning_id = %s", (warning_id,))
        row = cur.fetchone()
        if row is None:
            raise WarningActionError(f"no published warning has id {warning_id!r}")
        if row[0] == "resolved":
            raise WarningActionError(f"warning {warning_id} is already resolved")
        cur.execute("insert into ops.warning_actions (warning_id, action, actor, note) values (%s, %s, %s, %s)",
                    (warning_id, action, actor.strip(), note.strip()))
        conn.commit()


def list_warnings(warehouse_url: str, *, include_resolved: bool = False) -> list[dict]:
    with closing(psycopg2.connect(warehouse_url)) as conn, conn.cursor() as cur:
        cur.execute(
            "select warning_id, colour, vendor_id, rule_id, period_month, subject, observed_value, status, "
            "required_action from scoring.vendor_risk_warnings where %s or status <> 'resolved' "
            "order by case colour when 'red' then 0 when 'yellow' then 1 else 2 end, vendor_id, period_month",
            (include_resolved,),
        )
        names = [d[0] for d in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
