"""The pseudonymization key stays in the loading process: neither the key nor its HMAC pads (from
which XOR gives the key back) appear in SQL text, pg_stat_activity or the server's log, after a
load and after a load cancelled mid-statement; a line COPY rejects is not echoed into the log."""

from __future__ import annotations

import csv
import io
import threading
import time
from contextlib import closing
from datetime import date
from pathlib import Path

import psycopg2
import pytest

from hospital_ops import warehouse
from hospital_ops.config import settings
from hospital_ops.load.checks_sql import hmac_pads
from hospital_ops.load.loader import ManifestEntry, load_night
from hospital_ops.load.parsing import pseudonymize
from hospital_ops.sources.spec import Column, Entity, Source

KEY = b"key-that-must-stay-in-the-process-0042"
NIGHT = date(2026, 11, 1)
ENTITY = Entity(source="secrecy", name="patients", file_pattern="*.csv", business_key=("row_key",),
                description="secrecy", columns=(Column("row_key", required=True), Column("national_id", pii=True),
                                                Column("visits", "int", min=0, max=1000)))
SOURCE = Source(name="secrecy", description="secrecy", entities=(ENTITY,))
PLANTED_ID = "110101199003077777"  # the personal value that must not reach the log in clear


def _secrets() -> list[str]:
    """Every form in which the key could leak: itself, its hex, and both pads in hex (as a bytea
    literal shows them) and as the hex of the key they give back."""
    inner, outer = hmac_pads(KEY)
    return [KEY.decode(), KEY.hex(), inner.hex(), outer.hex(), inner.hex()[:32], outer.hex()[:32]]


def _server_logs() -> str:
    """The server's log files under var/warehouse (pg_ctl's log and any log directory)."""
    texts = [path.read_text(errors="replace") for path in settings().warehouse_dir.rglob("*.log")]
    texts += [path.read_text(errors="replace") for path in (settings().warehouse_dir / "pgdata").glob("log/*")]
    return "\n".join(texts)


def _write(path: Path, rows: int, *, broken_line: str | None = None) -> ManifestEntry:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row_key", "national_id", "visits"])
        for i in range(rows):
            writer.writerow([f"k{i}", f"11010119900307{i % 10000:04d}", i % 900])
        if broken_line:
            handle.write(broken_line + "\r\n")
    return ManifestEntry(ENTITY.name, path, f"secrecy/{NIGHT}/{path.name}", NIGHT)


class _Watcher(threading.Thread):
    """Reads pg_stat_activity every few milliseconds as the superuser (who sees every session's
    query text) while a load runs; optionally cancels the load's checking statement."""

    def __init__(self, admin_url: str, application_name: str, cancel_on: str | None = None) -> None:
        super().__init__(daemon=True)
        self.admin_url, self.application_name, self.cancel_on = admin_url, application_name, cancel_on
        self.seen: set[str] = set()
        self.cancelled = False
        self.stop = threading.Event()

    def run(self) -> None:
        with closing(psycopg2.connect(self.admin_url)) as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                while not self.stop.is_set():
                    cur.execute("select pid, query from pg_stat_activity where application_name = %s",
                                (self.application_name,))
                    for pid, query in cur.fetchall():
                        self.seen.add(query)
                        if self.cancel_on and not self.cancelled and query.lstrip().startswith(self.cancel_on):
                            cur.execute("select pg_cancel_backend(%s)", (pid,))
                            self.cancelled = True
                    time.sleep(0.002)


def _load_watched(db_url: str, admin_url: str, entries: list[ManifestEntry], cancel_on: str | None = None):
    name = f"secrecy-{time.monotonic_ns()}"
    watcher = _Watcher(admin_url, name, cancel_on)
    watcher.start()
    error = None
    try:
        with closing(psycopg2.connect(db_url, application_name=name)) as conn:
            try:
                load_night(conn, SOURCE, entries, run_id="secrecy", batch_date=NIGHT, key=KEY)
            except psycopg2.Error as exc:
                error = exc
    finally:
        time.sleep(0.05)
        watcher.stop.set()
        watcher.join()
    return watcher, error


def test_the_key_never_reaches_sql_text_activity_or_the_server_log(db_url: str, admin_database_url,
                                                                    tmp_path: Path) -> None:
    log_before = len(_server_logs())
    entry = _write(tmp_path / "patients.csv", 50_000)
    watcher, error = _load_watched(db_url, admin_database_url(db_url), [entry])
    assert error is None
    assert any("hospital_ops_load_" in q for q in watcher.seen), watcher.seen  # the watcher saw the load run
    with closing(psycopg2.connect(db_url)) as conn, conn.cursor() as cur:
        cur.execute("select national_id_pseudo from raw.secrecy__patients where row_key = 'k7'")
        assert cur.fetchone()[0] == pseudonymize("110101199003070007", KEY)  # the key was used
        cur.execute("select count(*) from pg_tables where tablename = 'hospital_ops_hmac_pads'")
        assert cur.fetchone()[0] == 0  # the pads' table went with the load's transaction
    seen = "\n".join(watcher.seen)
    new_log = _server_logs()[log_before:]
    for secret in _secrets():
        assert secret not in seen
        assert secret not in new_log


def test_a_cancelled_load_leaves_no_key_in_the_server_log(db_url: str, admin_database_url, tmp_path: Path) -> None:
    log_before = len(_server_logs())
    entry = _write(tmp_path / "patients.csv", 300_000)
    watcher, error = _load_watched(db_url, admin_database_url(db_url), [entry], cancel_on="execute hospital_ops_load_")
    assert watcher.cancelled and isinstance(error, psycopg2.errors.QueryCanceled), (watcher.seen, error)
    deadline = time.monotonic() + 5
    while "canceling statement" not in _server_logs()[log_before:] and time.monotonic() < deadline:
        time.sleep(0.1)
    new_log = _server_logs()[log_before:]
    assert "canceling statement due to user request" in new_log  # the log has the cancelled statement
    for secret in _secrets():
        assert secret not in new_log
        assert secret not in "\n".join(watcher.seen)


def _rejected_copy(url: str, line: str) -> psycopg2.Error:
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur, pytest.raises(psycopg2.DataError) as raised:
        cur.execute("create temporary table landing (a text, b text)")
        cur.copy_expert("copy landing from stdin with (format csv, header true)", io.StringIO(f"a,b\r\n{line}\r\n"))
    return raised.value


def test_a_line_copy_rejects_is_not_echoed_into_the_server_log(db_url: str, admin_database_url,
                                                               tmp_path: Path) -> None:
    log_before = len(_server_logs())
    # an extra cell: COPY rejects the file (and the loader reads it row by row instead)
    entry = _write(tmp_path / "patients.csv", 3, broken_line=f"k9,{PLANTED_ID},3,surplus")
    with closing(psycopg2.connect(db_url)) as conn:
        night = load_night(conn, SOURCE, [entry], run_id="secrecy", batch_date=NIGHT, key=KEY)
        assert night.files[0].rows_quarantined == 1
    # any COPY the writer runs: the server's default is to log `CONTEXT: COPY …, line 2: "<the line>"`,
    # as it still does for another role (the planted case that fires)
    shown_id = "110101198001018888"
    assert shown_id in str(_rejected_copy(admin_database_url(db_url), f"k8,{shown_id},surplus"))
    error = _rejected_copy(db_url, f"k9,{PLANTED_ID},surplus")
    assert PLANTED_ID in str(error)  # the client (the loader) still gets the whole error
    deadline = time.monotonic() + 5
    while shown_id not in _server_logs()[log_before:] and time.monotonic() < deadline:
        time.sleep(0.1)
    new_log = _server_logs()[log_before:]
    assert "extra data after last expected column" in new_log  # COPY did fail on it, and said so
    assert shown_id in new_log
    assert PLANTED_ID not in new_log


@pytest.fixture(autouse=True)
def _embedded_only() -> None:
    if warehouse.is_external():
        pytest.skip("reads the embedded server's log files")
