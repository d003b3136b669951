"""Running the real nightly DAG over a generated consortium, for the end-to-end and audit tests."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import psycopg2
import pytest

from hospital_ops.airflow_local import NightRun, run_night
from hospital_ops_sim.vendor import VendorGenerationResult, generate_vendor_source

END = date(2026, 11, 22)
NIGHTS = [END - timedelta(days=2), END - timedelta(days=1), END]  # a catch-up night, then incremental ones


@dataclass
class Consortium:
    url: str
    var_dir: Path
    generated: VendorGenerationResult
    runs: list[NightRun]


@contextmanager
def consortium_runs(tmp_path_factory, fresh_database, *, nights=NIGHTS, end=END, months=4,
                    vendors=13) -> Iterator[Consortium]:
    """A fresh database and var dir, generated sources, and the DAG run for each night."""
    var_dir = tmp_path_factory.mktemp("var")
    url = fresh_database("e2e")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOSPITAL_OPS_VAR_DIR", str(var_dir))
        patch.setenv("HOSPITAL_OPS_INBOX", str(var_dir / "inbox"))
        patch.setenv("WAREHOUSE_URL", url)
        generated = generate_vendor_source(var_dir / "inbox", end=end, months=months, vendors=vendors)
        yield Consortium(url, var_dir, generated, [run_night(night, url) for night in nights])


def query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def table_digest(url: str, relation: str) -> str:
    rows = query(url, f"select t::text from {relation} t order by 1")
    return hashlib.sha256("\n".join(r[0] for r in rows).encode()).hexdigest()
