"""Appeals 异议 on a department's monthly performance score: an upheld appeal is recorded in
ops.score_adjustments (append-only) with the adjusted score, why, who asked and who decided; the
nightly scoring shows it beside the computed score, which is never edited."""

from __future__ import annotations

from contextlib import closing
from datetime import date

import psycopg2

from hospital_ops.db import fetch_one


class AppealError(RuntimeError):
    pass


def record_adjustment(warehouse_url: str, department_id: str, month: date, adjusted_score: float, *,
                      reason: str, requested_by: str, decided_by: str) -> None:
    if not (0 <= adjusted_score <= 100):
        raise AppealError(f"an adjusted score must lie in 0..100, not {adjusted_score}")
    if not (reason.strip() and requested_by.strip() and decided_by.strip()):
        raise AppealError("an adjustment needs a reason, who appealed (--requested-by) and who decided (--decided-by)")
    month = month.replace(day=1)
    with closing(psycopg2.connect(warehouse_url)) as conn, conn.cursor() as cur:
        cur.execute("select to_regclass('scoring.department_performance_score') is not null")
        if not fetch_one(cur)[0]:
            raise AppealError("no department scores have been published yet: run a night first")
        cur.execute("select 1 from scoring.department_performance_score where department_id = %s and month = %s",
                    (department_id, month))
        if cur.fetchone() is None:
            raise AppealError(f"no published score for department {department_id} in {month:%Y-%m}")
        cur.execute("insert into ops.score_adjustments (department_id, month, adjusted_score, reason, requested_by, "
                    "decided_by) values (%s, %s, %s, %s, %s, %s)",
                    (department_id, month, adjusted_score, reason.strip(), requested_by.strip(), decided_by.strip()))
        conn.commit()
