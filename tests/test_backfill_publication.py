"""A backfill rebuilds history without rolling BI back: a backfill night older than the newest
publication is loaded only (its builds and publish are skipped, with the reason), unless the run's
conf forces it; a triggered older night still fails (test_publish_order), and a backfill of the
newest night or later runs whole."""

from __future__ import annotations

from contextlib import closing
from datetime import date, timedelta

import psycopg2
import pytest

from hospital_ops.airflow_local import FORCE_PUBLISH_CONF, older_backfill_reason, run_forces_publication
from hospital_ops.pipeline import publish

NEWEST = date(2026, 11, 2)


@pytest.fixture
def published(db_url: str) -> str:
    with closing(psycopg2.connect(db_url)) as conn, conn.cursor() as cur:
        cur.execute("create schema marts_build; create table marts_build.figures (as_of date)")
        cur.execute("insert into marts_build.figures values (%s)", (NEWEST,))
        conn.commit()
    publish(warehouse_url=db_url, business_date=NEWEST, run_id="newest")
    return db_url


def test_an_older_backfill_night_is_loaded_only_and_says_why(published: str) -> None:
    older = NEWEST - timedelta(days=1)
    reason = older_backfill_reason(published, older, run_type="backfill", forced=False)
    assert reason is not None
    assert reason.startswith(f"backfill of {older}: its rows are loaded, but it is neither built nor published: "
                             f"{NEWEST} is already published")
    assert f"hospital-ops airflow backfill --from {older} --to {older} --force-publish" in reason


def test_a_forced_or_newer_backfill_or_a_triggered_night_runs_whole(published: str) -> None:
    older = NEWEST - timedelta(days=1)
    assert older_backfill_reason(published, older, run_type="backfill", forced=True) is None
    assert older_backfill_reason(published, NEWEST, run_type="backfill", forced=False) is None
    assert older_backfill_reason(published, NEWEST + timedelta(days=1), run_type="backfill", forced=False) is None
    # a manual or scheduled older night is not skipped: its dbt stages refuse it (a failed night)
    for run_type in ("manual", "scheduled"):
        assert older_backfill_reason(published, older, run_type=run_type, forced=False) is None


def test_nothing_published_yet_backfills_whole(db_url: str) -> None:
    assert older_backfill_reason(db_url, date(2026, 1, 5), run_type="backfill", forced=False) is None


@pytest.mark.parametrize(("conf", "forced"), [
    (None, False), ({}, False), ({FORCE_PUBLISH_CONF: False}, False), ({FORCE_PUBLISH_CONF: "no"}, False),
    ({FORCE_PUBLISH_CONF: True}, True), ({FORCE_PUBLISH_CONF: "true"}, True), ({FORCE_PUBLISH_CONF: 1}, True),
])
def test_the_run_conf_forces_publication_only_when_it_says_so(conf, forced) -> None:
    assert run_forces_publication(conf) is forced
