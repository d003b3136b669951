"""`hospital-ops-sim bench`: what a night costs, measured on generated history at several sizes.

Hospitals judge a nightly pipeline by whether it finishes before the morning and keeps doing so as
years of history pile up. The benchmark measures, on this machine, so that a sceptic can check each
figure:

- **Two series, one variable each.** The *history series* grows the months of history while the
  hospitals and their volume stay the same (3 hospitals at the demo's volume; 1× = 6 months, 16× = 96
  months), and measures the same business-date night at every size: the same hospitals on the same
  day of the year give a night's delta of the same size, so the night's growth is growth with history
  alone. The rows the measured nights loaded are reported per size, and if they differ by more than
  `DELTA_TOLERANCE` the growth is "not measurable". The *delta series* holds the history fixed (the
  state after one backfill, restored for each night) and grows the night's delta: a night `k` days
  after the backfill catches up `k` days.
- **Scales labelled by what they hold**: hospitals × months (hospital-months), HIS volume, and the rows
  of history in the warehouse's raw tables before the measured night.
- **Repetitions.** Each night (the backfill and every measured night) runs `--repetitions` times
  (at least `MIN_REPETITIONS` for a verdict) from the same starting state: the backfill on an empty
  warehouse, each later night on a copy of the warehouse taken after the backfill (`CREATE DATABASE …
  TEMPLATE`) and the Airflow metadata copied back. A figure is the median with its spread (min–max
  and the interquartile range); a target counts as met only if the median meets it.
- **Load throughput.** For each source's CSV files at the first size: the loader's whole night
  (`load_night`: landing, checks, pseudonyms, row hash, quarantine, reconciliation, statistics) and,
  in the same run and interleaved with it (the order alternates), a plain `COPY … FROM STDIN (FORMAT
  csv)` of the same files into scratch tables of text columns. The ratio is taken per repetition
  (loader rows per second of its night against COPY rows per second), then its median and spread. A
  file COPY cannot read as it is (a row with the wrong number of cells) is left out of COPY's figures
  and counted; Excel workbooks have no raw COPY to compare with and are left out.
- **Stage wall times** from the night's Airflow log (`[DAG TEST] starting/end task` lines), the
  loader's own time (its log line per source) and dbt's own time running nodes (its log line per
  stage, from dbt's run result).
- **Orchestration overhead**: the night's wall time minus the work, where the work is the extract
  tasks (SQL read and landing files), the loader's own time and dbt's own elapsed time running its
  nodes. What remains is Airflow (process start, DAG parsing, task start), dbt's start-up and Great
  Expectations. It is measured through a *trigger* (a way to start a night and read back its tasks
  and logs): `airflow dags test` for every size, and the real scheduler (LocalExecutor) through
  Airflow's REST API (`/api/v2`, a JWT from `/auth/token`): with no `--airflow-api` the benchmark starts
  the project's own local deployment (`hospital_ops.airflow_local`: API server, scheduler, DAG
  processor, triggerer) on the first size's warehouse and runs its one-day night there
  `--repetitions` times, each from the state after the backfill, then stops it (`--no-scheduler`
  skips it); when a deployment answers on `--airflow-api`, it repeats a night that deployment already
  knows.
- **Peak memory**: the summed RSS of the `airflow dags test` process tree and of the PostgreSQL
  server's processes (the postmaster and its children), sampled every 0.2 s. RSS counts a shared page
  once per process that touched it, so the PostgreSQL figure is an upper bound; the private part
  (RSS less shared pages) is reported beside it.
- **Extrapolation** to a 10-hospital, 3-year consortium: its rows from the rows per outpatient visit and
  per inpatient stay of the largest size; then least-squares lines through every repetition of every
  size (backfill wall time against its rows; the night against the rows of history; the night against
  its delta), each with its residuals and standard error. A prediction is "not measurable" when the
  line cannot mean it: fewer than three sizes (a line through two points has no error), a slope
  below zero (time shrinking as rows grow), a predicted time at or below zero, or a target more than
  `MAX_EXTRAPOLATION` times beyond the largest measured point. `--consortium-quarter` runs the
  history series at the consortium's 9 hospitals and a volume that reaches a quarter of its rows, so
  the consortium falls within 4× of a measured point.

Each target line says met, missed or not measurable, with the median, its spread and the reason.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import statistics
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Self
from zoneinfo import ZoneInfo

import psycopg2

from hospital_ops import warehouse
from hospital_ops.config import environment, settings

# scale multiple → (hospitals, months) of history; 1× is the demo's 3 hospitals × 6 months. The
# history series keeps the hospitals (and the HIS volume) the same and grows the months, so the
# measured night's delta stays the same size across scales.
SCALES: dict[int, tuple[int, int]] = {1: (3, 6), 2: (3, 12), 4: (3, 24), 8: (3, 48), 16: (3, 96)}
DEMO_HOSPITAL_MONTHS = SCALES[1][0] * SCALES[1][1]
CONSORTIUM = {"hospitals": 10, "years": 3, "outpatient_visits": 60_000_000, "inpatient_stays": 1_200_000}
# A quarter of the consortium's rows: the HIS generator stops at 9 hospitals, so the volume per
# hospital makes up the rest. 9 hospitals × 36 months at volume 6 is about 63 million rows of history
# (see `expected_rows`), a little over a quarter of the consortium's ~232 million.
CONSORTIUM_QUARTER = {"hospitals": 9, "months": (9, 18, 36), "his_volume": 6.0}
TARGETS = {
    "loader_vs_copy_min": 0.8,
    "night_growth_max": 1.2,
    "night_growth_at_multiple": 16,
    "overhead_max_s": 30.0,
    "consortium_night_max_s": 300.0,
    "consortium_backfill_max_s": 3600.0,
    "peak_rss_max_bytes": 2 * 1024**3,
    "peak_rss_at_multiple": 16,
}
MIN_REPETITIONS = 3  # fewer runs of a night give no spread worth the name: its targets are not measurable
MAX_EXTRAPOLATION = 4.0  # a prediction at most this many times beyond the largest measured point
DELTA_TOLERANCE = 0.10  # the history series' nights may differ in rows loaded by this share of their median
DEFAULT_DELTA_DAYS = (1, 4, 16)
MET, MISSED, NOT_MEASURABLE = "met", "missed", "not measurable"
BENCH_KEY = "hospital-ops-bench"  # pseudonym key of the generated data: nothing real is hashed
DAG_ID = "hospital_ops_nightly"
HOSPITAL_TZ = ZoneInfo("Asia/Shanghai")  # a run's logical date is the start of its business day there
_TASK_EDGE = re.compile(r"^(\S+Z) .*\[DAG TEST\] (starting|end task) task_id=(\w+)")
_LOADER_LINE = re.compile(r"(\w+) night \S+: (\d+) files, (\d+) rows read, (\d+) loaded, (\d+) quarantined in ([\d.]+) s")
_DBT_SLOWEST = re.compile(r"dbt stage (\w+) slowest nodes: (.+)$", re.MULTILINE)
_DBT_NODE = re.compile(r"(\S+) ([\d.]+) s")
_DBT_LINE = re.compile(r"dbt stage (\w+): (\d+) nodes ok, \d+ warnings; ([\d.]+) s running nodes, ([\d.]+) s wall")
_STAGES = {  # table row → tasks whose spans it adds up
    "extract": ("extract_",),
    "load": ("load_",),
    "dbt staging + marts": ("dbt_build_marts",),
    "quality gate": ("quality_gate",),
    "dbt scoring": ("dbt_build_scoring",),
    "dbt snapshots": ("dbt_snapshot",),
    "publish + summary + ledger": ("publish", "summary", "record_run_ledger"),
}


@dataclass(frozen=True)
class Scale:
    multiple: float  # hospital-months × HIS volume, in units of the demo's 3 hospitals × 6 months
    hospitals: int
    months: int
    his_volume: float  # generate_his's scale: beds and outpatient volume per hospital

    @classmethod
    def of(cls, hospitals: int, months: int, his_volume: float) -> Scale:
        return cls(hospitals * months * his_volume / DEMO_HOSPITAL_MONTHS, hospitals, months, his_volume)

    @property
    def name(self) -> str:
        return f"h{self.hospitals}_m{self.months}_v{self.his_volume:g}".replace(".", "_")

    @property
    def hospital_months(self) -> int:
        return self.hospitals * self.months


# ------------------------------------------------------------------------------------ statistics


def spread(values: Iterable[float]) -> dict:
    """Median, min–max and interquartile range of repeated measurements (empty: n = 0)."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}
    if len(ordered) >= 2:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = q3 = ordered[0]
    return {"n": len(ordered), "median": statistics.median(ordered), "min": ordered[0], "max": ordered[-1],
            "q1": q1, "q3": q3, "values": ordered}


def describe(figure: dict, unit: str = "s", digits: int = 1) -> str:
    """'12.3 s median (min–max 11.0–13.9, n=3)'."""
    if not figure.get("n"):
        return "not measured"
    f = f"{{:.{digits}f}}"
    median, low, high = (f.format(figure[k]) for k in ("median", "min", "max"))
    return f"{median}{unit} median (min–max {low}–{high}{unit}, n={figure['n']})"


def too_few_runs(figure: dict) -> str | None:
    """Why a figure cannot carry a verdict, or None."""
    if figure.get("n", 0) < MIN_REPETITIONS:
        return (f"{figure.get('n', 0)} repetition{'s' * (figure.get('n', 0) != 1)}; a verdict needs at least "
                f"{MIN_REPETITIONS} (--repetitions)")
    return None


def fit_line(points: list[tuple[float, float]]) -> dict:
    """Least-squares line y = intercept + slope·x with its residuals and errors, or why none can be
    drawn. Needs three distinct x: a line through two sizes passes through both exactly and says
    nothing about its own error."""
    distinct = len({x for x, _ in points})
    if distinct < 3:
        return {"not_measurable": f"a line through {distinct} measured size{'s' * (distinct != 1)} "
                                  "(a fit needs at least 3 to state its error)", "points": len(points)}
    xs, ys = [x for x, _ in points], [y for _, y in points]
    line = statistics.linear_regression(xs, ys)
    residuals = [y - (line.intercept + line.slope * x) for x, y in points]
    n = len(points)
    mean_x = statistics.fmean(xs)
    sxx = sum((x - mean_x) ** 2 for x in xs)
    sse = sum(r * r for r in residuals)
    standard_error = math.sqrt(sse / (n - 2))  # of the regression: the typical distance of a run from the line
    sst = sum((y - statistics.fmean(ys)) ** 2 for y in ys)
    return {"intercept": line.intercept, "slope": line.slope, "points": n, "sizes": distinct,
            "residuals": residuals, "standard_error": standard_error,
            "slope_standard_error": standard_error / math.sqrt(sxx), "mean_x": mean_x, "sxx": sxx,
            "largest_x": max(xs), "r2": 1 - sse / sst if sst else 1.0}


def predict(fit: dict, x: float) -> dict:
    """The line's value at x with its standard error, or "not measurable" and why."""
    if "not_measurable" in fit:
        return {"not_measurable": fit["not_measurable"]}
    beyond = x / fit["largest_x"] if fit["largest_x"] else math.inf
    if beyond > MAX_EXTRAPOLATION:
        return {"not_measurable": f"{x:,.0f} is {beyond:.1f}× the largest measured point ({fit['largest_x']:,.0f}); "
                                  f"a straight line is trusted to {MAX_EXTRAPOLATION:g}× at most"}
    if fit["slope"] < 0:
        return {"not_measurable": f"the line's slope is negative ({fit['slope']:.3g}): time shrinking as the size "
                                  "grows is noise, not a cost a straight line can carry"}
    value = fit["intercept"] + fit["slope"] * x
    if value <= 0:
        return {"not_measurable": f"the line predicts {value:.1f} s, a time at or below zero"}
    error = fit["standard_error"] * math.sqrt(1 / fit["points"] + (x - fit["mean_x"]) ** 2 / fit["sxx"])
    return {"value": value, "standard_error": error, "beyond": beyond}


def ratio_spread(numerator: dict, denominator: dict) -> dict:
    """The ratio of two medians with the widest range their runs allow."""
    return {"n": min(numerator["n"], denominator["n"]), "median": numerator["median"] / denominator["median"],
            "min": numerator["min"] / denominator["max"], "max": numerator["max"] / denominator["min"]}


def median_run(runs: list[dict], key: str = "wall_s") -> dict:
    """The run whose figure is the median (the lower middle one of an even count)."""
    ordered = sorted(runs, key=lambda r: r[key])
    return ordered[(len(ordered) - 1) // 2]


# ------------------------------------------------------------------------------------ machine


def machine() -> dict:
    """The machine the figures were taken on."""
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import psutil

    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": round(psutil.virtual_memory().total / 1024**3, 1),
            "python": platform.python_version(), "platform": platform.platform(),
            "postgresql": _server_version()}


def _server_version() -> str:
    with closing(psycopg2.connect(warehouse.url())) as conn, conn.cursor() as cur:
        cur.execute("show server_version")
        return cur.fetchone()[0]


# ------------------------------------------------------------------------------------ generation

# Rows of history a month at HIS volume 1, for the lead hospital and for each member hospital, from
# the earlier method's two measured histories: 3 hospitals × 6 months held 1,016,974 rows (169,500 a
# month), 9 hospitals × 32 months 9,371,632 (292,900 a month), so a member adds about 20,600 a month
# and the lead holds about 128,300.
LEAD_ROWS_PER_MONTH = 128_300
MEMBER_ROWS_PER_MONTH = 20_600
# The HIS generator writes month by month (`hospital_ops_sim.his.simulation`): at its peak it holds one
# month's rows (with the cost-jump month's charges it holds back to the end), its patient register
# (typed arrays: about 21 bytes a patient with the pools, some 0.076 patients a row of history) and
# the interpreter with its libraries (47 MiB). Measured at 9 hospitals, volume 1 (about 310,000 rows a
# month): a peak RSS of 184 MiB with 3 months of history and 186–192 MiB with 9 (the earlier
# generator, which held the whole period: 424–425 and 906–907 MiB), so a month's row costs about 450
# bytes.
GENERATOR_BASE_BYTES = 50 * 1024**2
GENERATOR_BYTES_PER_MONTH_ROW = 450
GENERATOR_BYTES_PER_ROW_OF_HISTORY = 2  # the register: 0.076 patients a row × 21 bytes, rounded up


def expected_rows(scale: Scale) -> int:
    """About how many rows of history a scale generates."""
    per_month = LEAD_ROWS_PER_MONTH + (scale.hospitals - 1) * MEMBER_ROWS_PER_MONTH
    return round(scale.months * scale.his_volume * per_month)


def generator_peak_bytes(scale: Scale) -> int:
    """About the HIS generator's peak memory for a scale: a month of rows, its register, its base."""
    rows = expected_rows(scale)
    return GENERATOR_BASE_BYTES + GENERATOR_BYTES_PER_MONTH_ROW * rows // scale.months \
        + GENERATOR_BYTES_PER_ROW_OF_HISTORY * rows


def generator_fits_in_memory(scale: Scale) -> str | None:
    """Why this machine cannot generate the scale's history (its month of rows and patient register
    would not fit in the memory available), or None."""
    import psutil

    needed = generator_peak_bytes(scale)
    available = psutil.virtual_memory().available
    if needed > available:
        return (f"{scale.hospitals} hospitals × {scale.months} months at HIS volume {scale.his_volume:g} is about "
                f"{expected_rows(scale) / 1e6:.0f} million rows; the HIS generator, writing month by month, needs "
                f"about {needed / 1024**3:.1f} GiB at its peak and {available / 1024**3:.1f} GiB is available")
    return None


def _bench_environment(scale: Scale, root: Path, database_url: str, his_url: str):  # type: ignore[no-untyped-def]
    """Point every setting at this scale's own home, on the embedded (or configured) server, and the
    survey source at nothing configured (the nights are served the generated platform)."""
    return environment({
        "HOSPITAL_OPS_VAR_DIR": str(root),
        "HOSPITAL_OPS_INBOX": str(root / "inbox"),
        "WAREHOUSE_URL": database_url,
        "WAREHOUSE_ADMIN_URL": warehouse.admin_url(),
        "HIS_URL": his_url,
        "HOSPITAL_OPS_PSEUDONYM_KEY": BENCH_KEY,
        "SURVEY_API_URL": None,
        "SURVEY_API_TOKEN": None,
    })


def generate_scale(scale: Scale, root: Path, end: date, prefix: str) -> dict:
    """Generate a scale's vendor files, HIS database, insurance files, survey platform records and
    referral exports; return what was generated."""
    from hospital_ops_sim.his import generate_his
    from hospital_ops_sim.insurance import generate_insurance
    from hospital_ops_sim.referral import generate_referral
    from hospital_ops_sim.survey import generate_survey
    from hospital_ops_sim.vendor import generate_vendor_source

    started = time.perf_counter()
    inbox = root / "inbox"
    if inbox.exists():
        shutil.rmtree(inbox)
    vendor = generate_vendor_source(inbox, end=end, months=scale.months, hospitals=scale.hospitals)
    his_url = warehouse.create_database(f"{prefix}_his_{scale.name}", replace=True)
    his = generate_his(his_url, end=end, months=scale.months, hospitals=scale.hospitals, scale=scale.his_volume)
    insurance = generate_insurance(his_url, inbox, end=end)
    survey = generate_survey(his_url, root / "survey_api.json", end=end, months=scale.months)
    referral = generate_referral(his_url, inbox, end=end, months=scale.months)
    return {"vendor_files": vendor.files_written, "his_rows": dict(his.counts),
            "insurance": dict(insurance.counts), "survey": dict(survey.counts),
            "referral_rows": referral.rows_written, "seconds": round(time.perf_counter() - started, 1),
            "his_url": his_url, "survey_records": root / "survey_api.json"}


# ------------------------------------------------------------------------------------ throughput


def _csv_manifests(root: Path, his_url: str, end: date) -> dict:
    """Each source's CSV files of the whole history, as a catch-up night would take them."""
    from hospital_ops.extract.sql import extract_sql_source
    from hospital_ops.load.loader import plan_extract
    from hospital_ops.sources import SOURCES

    landing = root / "throughput_landing"
    if landing.exists():
        shutil.rmtree(landing)
    manifests = {}
    for name, source in SOURCES.items():
        if source.extract == "sql":
            extract_sql_source(source, his_url, landing, end, watermarks={})
            entries = plan_extract(landing, source, end, end - timedelta(days=1))
        else:
            if not (root / "inbox" / name).is_dir():
                continue
            entries = plan_extract(root / "inbox", source, end, None)
        manifests[name] = [e for e in entries if source.entity(e.entity).file_format == "csv"]
    return manifests


def _raw_copy(conn, source, manifest) -> dict[str, tuple[int, float]]:  # type: ignore[no-untyped-def]
    """COPY each file as it is into a scratch table of text columns: rows and seconds per file, or
    nothing for a file COPY rejects. One transaction, like the loader's night."""
    from hospital_ops.load.files import Utf8Stream, csv_header, detect_encoding

    results: dict[str, tuple[int, float]] = {}
    with conn.cursor() as cur:
        cur.execute("drop schema if exists bench_scratch cascade")
        cur.execute("create schema bench_scratch")
        for entry in manifest:
            encoding = detect_encoding(entry.path)
            width = len(csv_header(entry.path, encoding) or [])
            table = f"bench_scratch.{entry.entity}_{width}"
            cur.execute(f"create table if not exists {table} ({', '.join(f'c{i} text' for i in range(width))})")
            cur.execute("savepoint raw_copy")
            started = time.perf_counter()
            try:
                with Utf8Stream(entry.path, encoding) as stream:
                    cur.copy_expert(f"copy {table} from stdin with (format csv, header true)", stream)
            except psycopg2.DataError:
                cur.execute("rollback to savepoint raw_copy")
                continue
            results[entry.relative_path] = (cur.rowcount, time.perf_counter() - started)
        cur.execute("drop schema bench_scratch cascade")
    conn.commit()
    return results


def _loader_night(conn, source, manifest, end: date) -> tuple[dict[str, tuple[int, float]], float]:  # type: ignore[no-untyped-def]
    """The loader's rows read and seconds per file, and its whole night's wall time, on empty raw tables."""
    from hospital_ops.load.loader import load_night

    with conn.cursor() as cur:  # the source's raw tables anew; the bookkeeping tables are the migrations'
        for entity in source.entities:
            cur.execute(f"drop table if exists raw.{entity.raw_table} cascade")
    conn.commit()
    started = time.perf_counter()
    night = load_night(conn, source, manifest, run_id="bench", batch_date=end, key=BENCH_KEY.encode())
    wall = time.perf_counter() - started
    return {f.source_file: (f.rows_read, f.seconds) for f in night.files}, wall


def throughput_run(loader: dict[str, tuple[int, float]], loader_wall: float,
                   copied: dict[str, tuple[int, float]]) -> dict:
    """One repetition's figures: the loader's whole night (every file it read, over its night's wall
    time, delete, reconciliation and statistics included) against COPY's rows per second on the files
    it could read; and, for reference, the loader's per-file time on the same files as COPY."""
    both = [f for f in copied if f in loader]
    rows_loader = sum(rows for rows, _ in loader.values())
    rows_copy = sum(copied[f][0] for f in both)
    seconds_copy = sum(copied[f][1] for f in both)
    seconds_files = sum(loader[f][1] for f in both)
    loader_rate = rows_loader / loader_wall if loader_wall else 0.0
    copy_rate = rows_copy / seconds_copy if seconds_copy else 0.0
    return {"rows_loader": rows_loader, "rows_copy": rows_copy, "loader_night_s": loader_wall,
            "copy_s": seconds_copy, "loader_rows_per_s": loader_rate, "copy_rows_per_s": copy_rate,
            "ratio": loader_rate / copy_rate if copy_rate else 0.0,
            "files_ratio": (sum(loader[f][0] for f in both) / seconds_files) / copy_rate
            if seconds_files and copy_rate else 0.0,
            "files_copy_rejected": len(loader) - len(both)}


def measure_throughput(root: Path, his_url: str, end: date, repetitions: int, prefix: str) -> dict:
    from hospital_ops.sources import SOURCES

    manifests = _csv_manifests(root, his_url, end)
    database_url = warehouse.create_database(f"{prefix}_throughput", replace=True)
    sources = {}
    with closing(psycopg2.connect(database_url)) as conn:
        for name, manifest in manifests.items():
            source = SOURCES[name]
            runs = []
            for repetition in range(repetitions):
                if repetition % 2 == 0:
                    loader, loader_wall = _loader_night(conn, source, manifest, end)
                    copied = _raw_copy(conn, source, manifest)
                else:
                    copied = _raw_copy(conn, source, manifest)
                    loader, loader_wall = _loader_night(conn, source, manifest, end)
                runs.append(throughput_run(loader, loader_wall, copied))
            sources[name] = {
                "files": len(manifest), "files_copy_rejected": runs[0]["files_copy_rejected"],
                "rows_loader": runs[0]["rows_loader"], "rows_copy": runs[0]["rows_copy"],
                "loader_rows_per_s": spread(r["loader_rows_per_s"] for r in runs),
                "copy_rows_per_s": spread(r["copy_rows_per_s"] for r in runs),
                "ratio": spread(r["ratio"] for r in runs),
                "files_ratio": spread(r["files_ratio"] for r in runs),
                "repetitions": runs,
            }
    warehouse.drop_database(f"{prefix}_throughput")
    return {"repetitions": repetitions, "sources": sources}


# ----------------------------------------------------------------------------------------- memory


def postgres_server_pid(database_url: str) -> int | None:
    """The postmaster's process id, if the server runs on this machine where we can see it: the
    parent of the backend serving a connection."""
    import psutil

    with closing(psycopg2.connect(database_url)) as conn, conn.cursor() as cur:
        cur.execute("select pg_backend_pid()")
        backend = cur.fetchone()[0]
        try:  # while the connection is open: its backend ends with it
            parent = psutil.Process(backend).parent()
        except psutil.Error:
            return None  # not on this machine (or not visible from here)
    if parent is None or not parent.name().startswith("postgres"):
        return None
    return parent.pid


class PeakRss:
    """Summed RSS of this process's descendants (the `airflow dags test` tree) and of the PostgreSQL
    server (the postmaster and its children), sampled in a thread."""

    def __init__(self, server_pid: int | None, interval: float = 0.2) -> None:
        import psutil

        self._psutil = psutil
        self._server_pid = server_pid
        self._interval = interval
        self._stop = threading.Event()
        self.peak = self.peak_airflow = self.peak_postgres = self.peak_postgres_private = 0
        self.samples: list[tuple[float, int]] = []  # (epoch seconds, summed RSS of both)
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _tree(self, root) -> tuple[int, int]:  # type: ignore[no-untyped-def]
        """RSS and private RSS (less shared pages) of a process and its descendants."""
        rss = private = 0
        try:
            processes = [root, *root.children(recursive=True)]
        except self._psutil.Error:  # it ended between two samples
            return 0, 0
        for process in processes:
            try:
                info = process.memory_info()
            except self._psutil.Error:
                continue
            rss += info.rss
            private += info.rss - getattr(info, "shared", 0)
        return rss, private

    def _sample(self) -> None:
        me = self._psutil.Process()
        server = None
        if self._server_pid:
            try:
                server = self._psutil.Process(self._server_pid)
            except self._psutil.Error:
                server = None
        while not self._stop.is_set():
            try:
                children = [child for child in me.children() if child.pid != self._server_pid]
            except self._psutil.Error:
                children = []
            airflow = sum(self._tree(child)[0] for child in children)
            postgres, private = self._tree(server) if server is not None else (0, 0)
            self.peak_airflow = max(self.peak_airflow, airflow)
            self.peak_postgres = max(self.peak_postgres, postgres)
            self.peak_postgres_private = max(self.peak_postgres_private, private)
            self.peak = max(self.peak, airflow + postgres)
            self.samples.append((time.time(), airflow + postgres))
            self._stop.wait(self._interval)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def samples_in(samples: list[tuple[float, int]], span: tuple[float, float]):  # type: ignore[no-untyped-def]
    """The RSS samples taken while a task ran."""
    return (rss for at, rss in samples if span[0] <= at <= span[1])


# ----------------------------------------------------------------------------------------- nights


def parse_night_log(text: str) -> dict:
    """Task spans, the loader's and dbt's own times, from a night's `airflow dags test` log."""
    started: dict[str, datetime] = {}
    tasks: dict[str, float] = {}
    spans: dict[str, tuple[float, float]] = {}
    for line in text.splitlines():
        match = _TASK_EDGE.match(line)
        if not match:
            continue
        stamp = datetime.fromisoformat(match.group(1))
        if match.group(2) == "starting":
            started[match.group(3)] = stamp
        elif match.group(3) in started:
            began = started.pop(match.group(3))
            tasks[match.group(3)] = (stamp - began).total_seconds()
            spans[match.group(3)] = (began.timestamp(), stamp.timestamp())
    return {"tasks": tasks, "spans": spans, **parse_work_lines(text)}


def parse_work_lines(text: str) -> dict:
    """The loader's and dbt's own times from their log lines, wherever the log came from."""
    loader = {m.group(1): {"files": int(m.group(2)), "rows_read": int(m.group(3)), "rows_loaded": int(m.group(4)),
                           "seconds": float(m.group(6))} for m in _LOADER_LINE.finditer(text)}
    dbt = {m.group(1): {"nodes": int(m.group(2)), "node_seconds": float(m.group(3)), "wall_seconds": float(m.group(4))}
           for m in _DBT_LINE.finditer(text)}
    for m in _DBT_SLOWEST.finditer(text):
        if m.group(1) in dbt:
            dbt[m.group(1)]["slowest"] = {n.group(1): float(n.group(2)) for n in _DBT_NODE.finditer(m.group(2))}
    return {"loader": loader, "dbt": dbt}


def _stage_times(tasks: dict[str, float]) -> dict[str, float]:
    return {stage: round(sum(s for t, s in tasks.items() if any(t.startswith(p) for p in prefixes)), 2)
            for stage, prefixes in _STAGES.items()}


@dataclass
class TriggeredNight:
    """What a trigger hands back about one night it ran: whether it succeeded, the tasks' spans and
    the text of its logs (the loader's and dbt's lines), and its wall time when the trigger knows it
    better than a stopwatch around the call (the scheduler's own timestamps)."""

    succeeded: bool
    failed_tasks: list[str]
    log: str
    log_text: str
    tasks: dict[str, float]
    spans: dict[str, tuple[float, float]] = field(default_factory=dict)
    wall_s: float | None = None


Trigger = Callable[[date, str], TriggeredNight]


def dags_test_trigger(business_date: date, database_url: str) -> TriggeredNight:
    """Run the nightly DAG for one business date with `airflow dags test` in this scale's Airflow home."""
    from hospital_ops.airflow_local import run_night

    run = run_night(business_date, database_url)
    text = run.log_file.read_text(errors="replace")
    parsed = parse_night_log(text)
    return TriggeredNight(run.succeeded, run.failed_tasks, str(run.log_file), text, parsed["tasks"], parsed["spans"])


def night_figures(triggered: TriggeredNight, wall: float) -> dict:
    """The figures of a night from what its trigger returned: stages, the loader's and dbt's own times,
    work and orchestration overhead."""
    work_lines = parse_work_lines(triggered.log_text)
    extract_s = sum(s for t, s in triggered.tasks.items() if t.startswith("extract_"))
    loader_s = sum(v["seconds"] for v in work_lines["loader"].values())
    dbt_nodes_s = sum(v["node_seconds"] for v in work_lines["dbt"].values())
    work = extract_s + loader_s + dbt_nodes_s
    return {
        "succeeded": triggered.succeeded, "failed_tasks": triggered.failed_tasks, "log": triggered.log,
        "wall_s": round(wall, 2), "stages_s": _stage_times(triggered.tasks),
        "tasks_s": {t: round(s, 2) for t, s in sorted(triggered.tasks.items())},
        "loader": work_lines["loader"], "dbt": work_lines["dbt"],
        "rows_loaded": sum(v["rows_loaded"] for v in work_lines["loader"].values()),
        "work_s": round(work, 2), "overhead_s": round(wall - work, 2),
        "sources_wall_s": _sources_wall(triggered.spans),
    }


def _sources_wall(spans: dict[str, tuple[float, float]]) -> float:
    """From the first extract's start to the last load's end: the sources' tasks side by side under a
    scheduler with parallelism take less than their summed spans, one after another under `dags test`."""
    sources = [span for task, span in spans.items() if task.startswith(("extract_", "load_"))]
    return round(max(end for _, end in sources) - min(start for start, _ in sources), 2) if sources else 0.0


def measure_night(trigger: Trigger, business_date: date, database_url: str, *, memory: bool = True) -> dict:
    """Run one night through a trigger and take its measurements (memory only where its processes are
    this process's children: `airflow dags test`)."""
    server = postgres_server_pid(database_url) if memory else None
    sampler = PeakRss(server) if memory else None
    started = time.perf_counter()
    if sampler is not None:
        with sampler:
            triggered = trigger(business_date, database_url)
    else:
        triggered = trigger(business_date, database_url)
    wall = triggered.wall_s if triggered.wall_s is not None else time.perf_counter() - started
    figures = night_figures(triggered, wall) | {"night": business_date.isoformat()}
    if sampler is not None:
        by_task = {task: max(samples_in(sampler.samples, span), default=0) for task, span in triggered.spans.items()}
        figures |= {"peak_rss_bytes": sampler.peak, "peak_rss_airflow_bytes": sampler.peak_airflow,
                    "peak_rss_postgres_bytes": sampler.peak_postgres,
                    "peak_rss_postgres_private_bytes": sampler.peak_postgres_private,
                    "postgres_measured": server is not None, "peak_rss_by_task_bytes": by_task,
                    "peak_rss_task": max(by_task, key=by_task.get) if by_task else None}
    return figures


# ------------------------------------------------------------------------------- the real scheduler


class AirflowApiError(RuntimeError):
    pass


class SchedulerTrigger:
    """Run a night under a running Airflow deployment's scheduler (LocalExecutor in `hospital-ops
    airflow up`) through its REST API: trigger a run for the business date (or, if the deployment
    already has a run for it, clear that run so the scheduler runs it again), wait for it, then read
    its task instances' times and logs. The night runs on the deployment's own warehouse and inbox;
    the wall time is from the request to the last task's end, by the deployment's clock (the same
    machine), so the scheduler's pick-up delay counts as overhead."""

    def __init__(self, base_url: str, username: str | None = None, password: str | None = None,
                 dag_id: str = DAG_ID, poll_s: float = 1.0, timeout_s: float = 3600.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.username, self.password = username, password
        self.dag_id, self.poll_s, self.timeout_s = dag_id, poll_s, timeout_s
        self._token: str | None = None

    # -- HTTP
    def _request(self, method: str, path: str, body: dict | None = None, *, auth: bool = True,
                 accept: str = "application/json") -> object:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Accept", accept)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if auth:
            request.add_header("Authorization", f"Bearer {self.token()}")
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                payload = response.read().decode("utf-8", errors="replace")
        except urllib.error.HTTPError as error:
            raise AirflowApiError(f"{method} {path}: HTTP {error.code} {error.read()[:300]!r}") from error
        return json.loads(payload) if accept == "application/json" and payload else payload

    def token(self) -> str:
        """A JWT from the API server's /auth/token: with a user and password when given, else the
        no-credentials token a deployment with every user an admin hands out."""
        if self._token is None:
            if self.username:
                answer = self._request("POST", "/auth/token", {"username": self.username, "password": self.password},
                                       auth=False)
            else:
                answer = self._request("GET", "/auth/token", auth=False)
            self._token = answer["access_token"]  # type: ignore[index]
        return self._token

    def available(self) -> str | None:
        """Why no night can be run there (no answer, an unhealthy scheduler, a paused DAG), or None."""
        try:
            health = self._request("GET", "/api/v2/monitor/health", auth=False)
        except (OSError, AirflowApiError, ValueError) as error:
            return f"no Airflow deployment answers at {self.base_url} ({error})"
        scheduler = (health or {}).get("scheduler", {}).get("status")  # type: ignore[union-attr]
        if scheduler != "healthy":
            return f"the deployment at {self.base_url} has no healthy scheduler (status {scheduler})"
        try:
            dag = self._request("GET", f"/api/v2/dags/{self.dag_id}")
        except (OSError, AirflowApiError) as error:
            return f"the deployment at {self.base_url} does not serve {self.dag_id} ({error})"
        if dag.get("is_paused"):  # type: ignore[union-attr]
            return f"{self.dag_id} is paused on the deployment at {self.base_url}"
        return None

    def executor(self) -> str:
        try:
            answer = self._request("GET", "/api/v2/config/section/core/option/executor")
            sections = answer.get("sections", [])  # type: ignore[union-attr]
            return sections[0]["options"][0]["value"]
        except (OSError, AirflowApiError, KeyError, IndexError, TypeError, ValueError):
            return "not exposed by the deployment's configuration API"

    def last_business_date(self) -> date | None:
        """The business date of the deployment's latest successful night."""
        answer = self._request("GET", f"/api/v2/dags/{self.dag_id}/dagRuns?state=success&order_by=-logical_date&limit=1")
        runs = answer.get("dag_runs", [])  # type: ignore[union-attr]
        if not runs or not runs[0].get("logical_date"):
            return None
        return business_date_of(runs[0]["logical_date"])

    # -- a night
    def __call__(self, business_date: date, database_url: str = "") -> TriggeredNight:
        requested = time.time()
        run_id = self._start(business_date)
        deadline = time.monotonic() + self.timeout_s
        state = "unknown"
        while True:
            try:
                run = self._request("GET", f"/api/v2/dags/{self.dag_id}/dagRuns/{urllib.parse.quote(run_id)}")
                state = run["state"]  # type: ignore[index]
            except (TimeoutError, urllib.error.URLError) as error:  # a busy API server: ask again
                state = f"unknown ({error})"
            if state in ("success", "failed"):
                break
            if time.monotonic() > deadline:
                raise AirflowApiError(f"{run_id} still {state} after {self.timeout_s:.0f} s")
            time.sleep(self.poll_s)
        instances = self._request(
            "GET", f"/api/v2/dags/{self.dag_id}/dagRuns/{urllib.parse.quote(run_id)}/taskInstances?limit=1000")
        instances = instances["task_instances"]  # type: ignore[index]
        texts = [self._log(run_id, ti) for ti in instances if ti.get("try_number")]
        return scheduler_night(run_id, state, instances, "\n".join(texts), requested,
                               f"{self.base_url}/dags/{self.dag_id}/runs/{run_id}")

    def _start(self, business_date: date) -> str:
        logical = datetime.combine(business_date, datetime.min.time(), HOSPITAL_TZ).isoformat()
        run_id = f"bench__{business_date.isoformat()}__{datetime.now():%Y%m%dT%H%M%S%f}"
        try:
            self._request("POST", f"/api/v2/dags/{self.dag_id}/dagRuns", {"dag_run_id": run_id, "logical_date": logical})
            return run_id
        except AirflowApiError as error:
            if "HTTP 409" not in str(error):
                raise
        # the deployment already has a run of this business date: run it again (reruns are idempotent)
        since = urllib.parse.quote(logical)
        until = urllib.parse.quote(datetime.combine(business_date + timedelta(days=1), datetime.min.time(),
                                                    HOSPITAL_TZ).isoformat())
        answer = self._request("GET", f"/api/v2/dags/{self.dag_id}/dagRuns?logical_date_gte={since}"
                                      f"&logical_date_lt={until}&order_by=-logical_date&limit=1")
        existing = answer["dag_runs"][0]["dag_run_id"]  # type: ignore[index]
        self._request("POST", f"/api/v2/dags/{self.dag_id}/dagRuns/{urllib.parse.quote(existing)}/clear",
                      {"dry_run": False, "only_failed": False})
        return existing

    def _log(self, run_id: str, instance: dict) -> str:
        path = (f"/api/v2/dags/{self.dag_id}/dagRuns/{urllib.parse.quote(run_id)}/taskInstances/"
                f"{instance['task_id']}/logs/{instance['try_number']}?full_content=true")
        if instance.get("map_index", -1) >= 0:
            path += f"&map_index={instance['map_index']}"
        try:
            answer = self._request("GET", path)
        except AirflowApiError:
            return ""
        return log_content_text(answer)


def business_date_of(logical_date: str) -> date:
    return datetime.fromisoformat(logical_date).astimezone(HOSPITAL_TZ).date()


def log_content_text(answer: object) -> str:
    """A task log from the API as text: Airflow 3 answers structured lines ({"event": …}) or text."""
    content = answer.get("content", answer) if isinstance(answer, dict) else answer
    if isinstance(content, str):
        return content
    lines = []
    for item in content or []:
        if isinstance(item, dict):
            lines.append(str(item.get("event", "")))
        elif isinstance(item, (list, tuple)):  # older shape: [(host, text), …]
            lines.append(str(item[-1]))
        else:
            lines.append(str(item))
    return "\n".join(lines)


def scheduler_night(run_id: str, state: str, instances: list[dict], log_text: str, requested: float,
                    where: str) -> TriggeredNight:
    """A night as the scheduler ran it, from its task instances (start and end dates) and their logs."""
    tasks: dict[str, float] = {}
    spans: dict[str, tuple[float, float]] = {}
    for ti in instances:
        if not ti.get("start_date") or not ti.get("end_date"):
            continue
        began = datetime.fromisoformat(ti["start_date"]).timestamp()
        ended = datetime.fromisoformat(ti["end_date"]).timestamp()
        tasks[ti["task_id"]] = tasks.get(ti["task_id"], 0.0) + ended - began
        low, high = spans.get(ti["task_id"], (began, ended))
        spans[ti["task_id"]] = (min(low, began), max(high, ended))
    failed = sorted(ti["task_id"] for ti in instances if ti.get("state") in ("failed", "upstream_failed"))
    wall = max((high for _, high in spans.values()), default=requested) - requested
    return TriggeredNight(state == "success", failed, where, log_text, tasks, spans, wall_s=max(wall, 0.0))


def measure_scheduler(api: SchedulerTrigger | None, repetitions: int, business_date: date | None,
                      before_each: Callable[[], object] | None = None) -> dict:
    """The orchestration overhead of nights under the deployment's scheduler, or why not measured.
    `before_each` runs before each night (the local deployment's puts the warehouse back)."""
    if api is None:
        return {"measured": False, "reason": "no Airflow deployment named (--airflow-api)"}
    unavailable = api.available()
    if unavailable:
        return {"measured": False, "reason": unavailable}
    night = business_date or api.last_business_date()
    if night is None:
        return {"measured": False, "reason": f"the deployment at {api.base_url} has no successful night to repeat"}
    runs = []
    for _ in range(max(repetitions, 1)):
        if before_each is not None:
            before_each()
        runs.append(measure_night(api, night, "", memory=False))
    return {"measured": True, "url": api.base_url, "executor": api.executor(), "night": night.isoformat(),
            "runs": runs, "overhead_s": spread(r["overhead_s"] for r in runs if r["succeeded"]),
            "wall_s": spread(r["wall_s"] for r in runs if r["succeeded"])}


# The local deployment the benchmark starts when no --airflow-api is named: only the nights it
# triggers run (no scheduled ones), the docs refresh stays paused (the nightly is unpaused alone), and
# the configuration API answers so the executor can be read back (Airflow masks sensitive options).
LOCAL_DEPLOYMENT_ENV = {
    "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
    "AIRFLOW__API__EXPOSE_CONFIG": "True",
}


def measure_local_scheduler(database: str, snapshot: str, night: date, repetitions: int, prefix: str) -> dict:
    """The orchestration overhead under the real scheduler without a deployment to ask: start the
    project's own local deployment (`hospital_ops.airflow_local.up`: API server, scheduler with
    LocalExecutor, DAG processor, triggerer; its metadata in a database of the benchmark's own) on
    the scale's warehouse, run `night` `repetitions` times through it with `SchedulerTrigger`, each
    from the warehouse as the backfill left it (`snapshot`), and stop it. Runs inside the scale's
    environment (its Airflow home, inbox and sources)."""
    from hospital_ops import airflow_local

    meta = f"{prefix}_airflow_meta"
    database_url = _clone_database(snapshot, database)
    try:
        deployment = airflow_local.up(database_url, warehouse.admin_url(), meta_database=meta, meta_role=meta,
                                      extra_env=LOCAL_DEPLOYMENT_ENV)
    except airflow_local.AirflowDeploymentError as error:
        return {"measured": False, "reason": f"the local Airflow deployment did not start: {str(error)[:500]}"}
    try:
        client = airflow_local.AirflowApi(deployment)
        client.wait_for_dag(DAG_ID)
        client.set_paused(False, DAG_ID)
        api = SchedulerTrigger(deployment.url, deployment.username, deployment.password)
        result = measure_scheduler(api, repetitions, night, lambda: _clone_database(snapshot, database))
    except (airflow_local.AirflowDeploymentError, AirflowApiError, OSError) as error:
        result = {"measured": False, "reason": f"the local Airflow deployment failed: {str(error)[:500]}"}
    finally:
        airflow_local.down()
        warehouse.drop_database(meta)
    return result | {"deployment": "local, started by the benchmark (hospital_ops.airflow_local)"}


# ------------------------------------------------------------------------------------------ scales


def _airflow_template(base: Path) -> Path:
    """One migrated Airflow metadata database, copied into each scale's home (a migration takes a while)."""
    from hospital_ops.airflow_local import airflow_env, ensure_metadata_db

    template = base / "airflow_template"
    if not (template / ".migrated").exists():
        template.mkdir(parents=True, exist_ok=True)
        env = airflow_env(warehouse.url()) | {"AIRFLOW_HOME": str(template)}
        ensure_metadata_db(env)
    return template


def _restore_airflow(source: Path, home: Path) -> None:
    """Put a saved Airflow metadata database back (not airflow.cfg: it names its own home's paths)."""
    home.mkdir(parents=True, exist_ok=True)
    for name in ("airflow.db", ".migrated"):
        shutil.copy2(source / name, home / name)


def _clone_database(source: str, target: str) -> str:
    """A fresh copy of a database (CREATE DATABASE … TEMPLATE): the warehouse as it was after the
    backfill, for each night measured from there."""
    conn = psycopg2.connect(warehouse.admin_url())
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f'drop database if exists "{target}" with (force)')
            # a template must have no sessions; only this benchmark's finished nights used it
            cur.execute("select pg_terminate_backend(pid) from pg_stat_activity where datname = %s", (source,))
            cur.execute(f'create database "{target}" template "{source}" owner "{warehouse.WRITER}" '
                        "strategy file_copy")
    finally:
        conn.close()
    return warehouse.with_database(warehouse.url(), target)


def _keep_log(night: dict, logs: Path, label: str) -> None:
    """Each repetition overwrites the night's log: keep a copy under the scale's logs/."""
    source = Path(night["log"])
    if source.exists():
        logs.mkdir(parents=True, exist_ok=True)
        kept = logs / f"{label}.log"
        shutil.copy2(source, kept)
        night["log"] = str(kept)


def series_figures(runs: list[dict]) -> dict:
    """Median and spread of a night's repetitions (successful ones only)."""
    ok = [r for r in runs if r["succeeded"]]
    figures = {key: spread(r[key] for r in ok) for key in ("wall_s", "overhead_s", "rows_loaded")}
    if ok and "peak_rss_bytes" in ok[0]:
        figures["peak_rss_bytes"] = spread(r["peak_rss_bytes"] for r in ok)
    figures["failed"] = len(runs) - len(ok)
    return figures


def measure_scale(scale: Scale, base: Path, end: date, prefix: str, *, delta_days: tuple[int, ...],
                  repetitions: int, trigger: Trigger = dags_test_trigger, scheduler_repetitions: int = 0) -> dict:
    """Generate a scale's history, run its backfill `repetitions` times on an empty warehouse, keep the
    warehouse and Airflow's metadata after the last, then run each measured night (`k` days after the
    backfill, for each k of `delta_days`) `repetitions` times, each from that saved state. With
    `scheduler_repetitions`, the one-day night also runs that many times under the local deployment's
    scheduler from the same state (`measure_local_scheduler`; the result's "scheduler")."""
    from hospital_ops_sim.survey_api import simulated_survey_api

    root = base / scale.name
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    pristine = _airflow_template(base)
    generated = generate_scale(scale, root, end, prefix)
    database = f"{prefix}_{scale.name}"
    snapshot = f"{database}_after_backfill"
    backfill_date = end - timedelta(days=max(delta_days))
    saved_airflow = root / "airflow_after_backfill"
    backfills: list[dict] = []
    nights: dict[str, dict] = {}
    history: dict = {}
    scheduler: dict = {"measured": False, "reason": "the backfill did not succeed"}
    database_url = warehouse.create_database(database, replace=True)
    with _bench_environment(scale, root, database_url, generated["his_url"]), \
            simulated_survey_api(generated["survey_records"]):
        for repetition in range(repetitions):
            _restore_airflow(pristine, root / "airflow")
            database_url = warehouse.create_database(database, replace=True)
            backfill = measure_night(trigger, backfill_date, database_url)
            _keep_log(backfill, root / "logs", f"backfill_{repetition + 1}")
            backfills.append(backfill)
            if not backfill["succeeded"]:
                break
        if backfills and backfills[-1]["succeeded"]:
            history = _history_rows(database_url)
            _clone_database(database, snapshot)
            saved_airflow.mkdir(exist_ok=True)
            _restore_airflow(root / "airflow", saved_airflow)
            for days in delta_days:
                runs = []
                for repetition in range(repetitions):
                    database_url = _clone_database(snapshot, database)
                    _restore_airflow(saved_airflow, root / "airflow")
                    night = measure_night(trigger, backfill_date + timedelta(days=days), database_url)
                    _keep_log(night, root / "logs", f"night_{days}d_{repetition + 1}")
                    runs.append(night | {"delta_days": days})
                nights[str(days)] = {"delta_days": days, "runs": runs, **series_figures(runs)}
            if scheduler_repetitions > 0:
                print(f"[bench] the one-day night under the scheduler (LocalExecutor), {scheduler_repetitions} "
                      "repetitions …", flush=True)
                scheduler = measure_local_scheduler(database, snapshot, backfill_date + timedelta(days=1),
                                                    scheduler_repetitions, prefix)
            warehouse.drop_database(snapshot)
    return {"scale": scale.multiple, "name": scale.name, "hospitals": scale.hospitals, "months": scale.months,
            "hospital_months": scale.hospital_months, "his_volume": scale.his_volume, "root": str(root),
            "database": database_url, "backfill_date": backfill_date.isoformat(),
            "generated": {k: v for k, v in generated.items() if k not in ("his_url", "survey_records")},
            "history_rows": history, "backfill": {"runs": backfills, **series_figures(backfills)},
            "nights": nights} | ({"scheduler": scheduler} if scheduler_repetitions > 0 else {})


def _history_rows(database_url: str) -> dict:
    """Rows in raw by table, and the visit- and stay-driven totals the extrapolation uses."""
    with closing(psycopg2.connect(database_url)) as conn, conn.cursor() as cur:
        cur.execute("select table_name from information_schema.tables where table_schema = 'raw' "
                    "and table_name not like '\\_%' order by 1")
        counts = {}
        for (table,) in cur.fetchall():
            cur.execute(f"select count(*) from raw.{table}")
            counts[table] = cur.fetchone()[0]
        split = {"charges_of_visits": 0, "charges_of_stays": 0}
        if "his__charges" in counts:
            cur.execute("select count(*) filter (where visit_id is not null), count(*) filter (where stay_id is not null) "
                        "from raw.his__charges")
            split["charges_of_visits"], split["charges_of_stays"] = cur.fetchone()
    return {"tables": counts, "total": sum(counts.values()), **split}


def label(scale: dict) -> str:
    """'1× (3 hospitals × 6 months = 18 hospital-months, 1.02 M rows of history)'."""
    rows = scale.get("history_rows", {}).get("total")
    held = f", {rows / 1e6:.2f} M rows of history" if rows else ""
    volume = f" at HIS volume {scale['his_volume']:g}" if scale["his_volume"] != 1 else ""
    return (f"{scale['scale']:g}× ({scale['hospitals']} hospitals × {scale['months']} months = "
            f"{scale['hospital_months']} hospital-months{volume}{held})")


# ---------------------------------------------------------------------------------- extrapolation


def _ok_runs(series: dict | None) -> list[dict]:
    return [r for r in (series or {}).get("runs", []) if r["succeeded"]]


def history_points(scales: list[dict]) -> list[tuple[float, float]]:
    """(rows of history, wall seconds) of every repetition of the one-day night at every scale."""
    return [(s["history_rows"]["total"], r["wall_s"]) for s in scales if s.get("history_rows")
            for r in _ok_runs(s["nights"].get("1"))]


def delta_points(scale: dict) -> list[tuple[float, float]]:
    """(rows the night loaded, wall seconds) of every repetition of every delta at one scale."""
    return [(r["rows_loaded"], r["wall_s"]) for series in scale["nights"].values() for r in _ok_runs(series)]


def consortium_rows(largest: dict) -> dict | None:
    """The consortium's rows of history from the rows per outpatient visit and per inpatient stay of
    the largest measured scale (visits, their charges and patients; stays, their charges, diagnoses,
    surgeries and settlements)."""
    history = largest.get("history_rows") or {}
    tables = history.get("tables", {})
    visits, stays = tables.get("his__outpatient_visits", 0), tables.get("his__inpatient_stays", 0)
    if not visits or not stays:
        return None
    per_visit = (visits + history["charges_of_visits"] + tables.get("his__patients", 0)) / visits
    per_stay = (stays + history["charges_of_stays"] + tables.get("his__diagnoses", 0)
                + tables.get("his__surgeries", 0) + tables.get("insurance__settlements", 0)) / stays
    rows = CONSORTIUM["outpatient_visits"] * per_visit + CONSORTIUM["inpatient_stays"] * per_stay
    days = (date(2000 + CONSORTIUM["years"], 1, 1) - date(2000, 1, 1)).days
    return {"rows_per_visit": per_visit, "rows_per_stay": per_stay, "rows": rows, "night_delta_rows": rows / days}


def _fit_summary(fit: dict) -> dict:
    if "not_measurable" in fit:
        return fit
    return {k: fit[k] for k in ("intercept", "slope", "standard_error", "slope_standard_error", "r2", "points",
                                "sizes", "residuals", "largest_x")}


def extrapolate(scales: list[dict]) -> dict:
    """The consortium's backfill and night, each from its own line and with its error, or why a line
    cannot say."""
    measured = [s for s in scales if s.get("history_rows")]
    if not measured:
        return {"not_measurable": "no scale has a successful backfill"}
    largest = max(measured, key=lambda s: s["history_rows"]["total"])
    consortium = consortium_rows(largest)
    if consortium is None:
        return {"not_measurable": "the largest scale has no outpatient visits or inpatient stays"}
    backfill_fit = fit_line([(r["rows_loaded"], r["wall_s"]) for s in measured for r in _ok_runs(s["backfill"])])
    history_fit = fit_line(history_points(measured))
    delta_scale = max(measured, key=lambda s: len(s["nights"]))
    delta_fit = fit_line(delta_points(delta_scale))
    backfill = predict(backfill_fit, consortium["rows"])
    night = predict(history_fit, consortium["rows"])
    fixed_delta = spread(r["rows_loaded"] for s in measured for r in _ok_runs(s["nights"].get("1")))
    if "not_measurable" not in night:
        # the history line holds the measured night's delta; the delta line adds what a consortium's
        # bigger delta costs on top, at its slope
        extra = predict(delta_fit, consortium["night_delta_rows"])
        if "not_measurable" in extra:
            night = {"not_measurable": "the night's delta: " + extra["not_measurable"]}
        else:
            grown = consortium["night_delta_rows"] - fixed_delta["median"]
            value = night["value"] + delta_fit["slope"] * grown
            error = math.hypot(night["standard_error"], delta_fit["slope_standard_error"] * grown)
            night = {"value": value, "standard_error": error, "beyond": night["beyond"],
                     "delta_beyond": extra["beyond"]}
    return {
        "method": ("rows per outpatient visit and per inpatient stay from the largest measured scale; least-squares "
                   "lines through every repetition: the backfill's wall time against its rows; the one-day night's "
                   "wall time against the rows of history (its delta held the same); the night's wall time against "
                   "the rows it loaded at one history (the delta series). The consortium's night is the history "
                   "line at its rows plus the delta line's slope times the consortium's larger delta (its rows "
                   f"over {CONSORTIUM['years']} years of days); errors are combined as independent"),
        **{k: round(v, 2) for k, v in consortium.items()},
        "fixed_delta_rows": fixed_delta,
        "backfill_fit": _fit_summary(backfill_fit), "history_fit": _fit_summary(history_fit),
        "delta_fit": _fit_summary(delta_fit), "backfill": backfill, "night": night,
    }


# ---------------------------------------------------------------------------------------- verdicts


def _line(target: str, measured: str, verdict: str, why: str) -> dict:
    return {"target": target, "measured": measured, "verdict": verdict, "why": why}


def judge_at_most(target: str, figure: dict, limit: float, measured: str, missed_why: Callable[[], str],
                  unit: str = " s") -> dict:
    """met only if the median is within the limit; not measurable with too few repetitions."""
    few = too_few_runs(figure)
    if few:
        return _line(target, measured, NOT_MEASURABLE, few)
    if figure["median"] <= limit:
        return _line(target, measured, MET, f"the median is within {limit:g}{unit}")
    return _line(target, measured, MISSED, missed_why())


def targets(result: dict) -> list[dict]:
    """Each target with its median and spread, met / missed / not measurable, and why."""
    lines = []
    throughput = result.get("throughput", {}).get("sources", {})
    limit = TARGETS["loader_vs_copy_min"]
    target = f"the loader's whole night ≥ {limit}× a raw COPY of the same rows"
    if throughput:
        name, worst = min(throughput.items(), key=lambda kv: kv[1]["ratio"].get("median", 0))
        ratio = worst["ratio"]
        measured = describe(ratio, "×", 2) + f", {name} (the lowest source)"
        few = too_few_runs(ratio)
        if few:
            lines.append(_line(target, measured, NOT_MEASURABLE, few))
        elif ratio["median"] >= limit:
            lines.append(_line(target, measured, MET, f"every source's median is at least {limit}×"))
        else:
            lines.append(_line(target, measured, MISSED, _loader_why(worst)))
    else:
        lines.append(_line(target, "not measured", NOT_MEASURABLE, "the throughput was skipped (--repetitions 0)"))
    lines.append(night_growth_target(result.get("scales", [])))
    lines += overhead_targets(result)
    lines += consortium_targets(result.get("extrapolation") or {})
    lines.append(memory_target(result.get("scales", [])))
    return lines


def _loader_why(source: dict) -> str:
    loader, copy = source["loader_rows_per_s"]["median"], source["copy_rows_per_s"]["median"]
    files = source.get("files_ratio", {}).get("median")
    per_file = (f"; the files alone, without the night's delete, reconciliation and statistics, run at "
                f"{files:.2f}× COPY" if files else "")
    return (f"the loader's night takes {loader:,.0f} rows/s against COPY's {copy:,.0f}{per_file}: it writes every row "
            "twice (a landing table, then raw) and converts and checks every cell in SQL on one backend")


def night_growth_target(scales: list[dict]) -> dict:
    """The night at 16× history against the night at the smallest, the delta held the same."""
    at, limit = TARGETS["night_growth_at_multiple"], TARGETS["night_growth_max"]
    target = f"the night at {at}× history ≤ {limit}× the night at the smallest, with the same delta"
    series = sorted((s for s in scales if _ok_runs(s.get("nights", {}).get("1"))), key=lambda s: s["scale"])
    if len(series) < 2:
        return _line(target, "not measured", NOT_MEASURABLE, f"{len(series)} scale{'s' * (len(series) != 1)} with a "
                     "measured night; growth needs two or more")
    small = series[0]
    small_wall = small["nights"]["1"]["wall_s"]
    few = too_few_runs(small_wall)
    deltas = spread(s["nights"]["1"]["rows_loaded"]["median"] for s in series)
    held = (deltas["max"] - deltas["min"]) / deltas["median"] if deltas["median"] else math.inf
    if held > DELTA_TOLERANCE:
        return _line(target, f"deltas of {deltas['min']:,.0f}–{deltas['max']:,.0f} rows", NOT_MEASURABLE,
                     f"the measured nights' deltas differ by {held:.0%} (more than {DELTA_TOLERANCE:.0%}): growth "
                     "with history is mixed with growth with the delta")
    largest = series[-1]
    if largest["scale"] >= at:
        large_wall = largest["nights"]["1"]["wall_s"]
        few = few or too_few_runs(large_wall)
        growth = ratio_spread(large_wall, small_wall)
        measured = (describe(growth, "×", 2) + f" ({largest['scale']:g}× against {small['scale']:g}×, "
                    f"{large_wall['median']:.1f} s against {small_wall['median']:.1f} s)")
    else:
        fit = fit_line(history_points(series))
        rows_at = small["history_rows"]["total"] * at / small["scale"]
        predicted = predict(fit, rows_at)
        if "not_measurable" in predicted:
            return _line(target, f"{at}× not measured (largest {largest['scale']:g}×)", NOT_MEASURABLE,
                         predicted["not_measurable"])
        growth = {"n": small_wall["n"], "median": predicted["value"] / small_wall["median"],
                  "min": (predicted["value"] - predicted["standard_error"]) / small_wall["median"],
                  "max": (predicted["value"] + predicted["standard_error"]) / small_wall["median"]}
        measured = (f"{growth['median']:.2f}× extrapolated to {rows_at / 1e6:.1f} M rows "
                    f"({predicted['value']:.1f} ± {predicted['standard_error']:.1f} s, "
                    f"{predicted['beyond']:.1f}× beyond {largest['scale']:g}×) against {small_wall['median']:.1f} s")
    if few:
        return _line(target, measured, NOT_MEASURABLE, few)
    if growth["median"] <= limit:
        return _line(target, measured, MET, f"the median is within {limit}× (range {growth['min']:.2f}–"
                     f"{growth['max']:.2f}×)")
    grown = sorted(((stage, _median_stage(largest, stage) - _median_stage(small, stage)) for stage in _STAGES),
                   key=lambda kv: -kv[1])[:3]
    return _line(target, measured, MISSED, "the stages that grew most: " + ", ".join(
        f"{stage} +{delta:.0f} s" for stage, delta in grown) + _grown_nodes(
        median_run(_ok_runs(small["nights"]["1"])), median_run(_ok_runs(largest["nights"]["1"]))))


def _median_stage(scale: dict, stage: str) -> float:
    return statistics.median(r["stages_s"][stage] for r in _ok_runs(scale["nights"]["1"]))


def _grown_nodes(small: dict, large: dict) -> str:
    """The dbt nodes (models, tests) whose time grew most between two nights: what still follows the
    history rather than the night's delta."""
    grown = []
    for stage, figures in large.get("dbt", {}).items():
        before = small.get("dbt", {}).get(stage, {}).get("slowest", {})
        grown += [(node, seconds - before.get(node, 0.0)) for node, seconds in figures.get("slowest", {}).items()]
    grown = sorted((g for g in grown if g[1] >= 0.5), key=lambda g: -g[1])[:4]
    if not grown:
        return ""
    return ("; the dbt nodes that grew most: " + ", ".join(f"{node} +{delta:.1f} s" for node, delta in grown)
            + " (each still reads its whole input, not the night's delta)")


def overhead_targets(result: dict) -> list[dict]:
    limit = TARGETS["overhead_max_s"]
    lines = []
    target = f"orchestration overhead ≤ {limit:.0f} s a night (airflow dags test)"
    nights = [(s, s["nights"]["1"]) for s in result.get("scales", []) if _ok_runs(s.get("nights", {}).get("1"))]
    if nights:
        scale, worst = max(nights, key=lambda n: n[1]["overhead_s"]["median"])
        lines.append(judge_at_most(target, worst["overhead_s"], limit,
                                   describe(worst["overhead_s"]) + f" (one-day night at {scale['scale']:g}×, the "
                                   "highest median)", lambda: _overhead_why(median_run(_ok_runs(worst)))))
    else:
        lines.append(_line(target, "not measured", NOT_MEASURABLE, "no night succeeded"))
    scheduler = result.get("scheduler") or {}
    target = f"orchestration overhead ≤ {limit:.0f} s a night under the scheduler (LocalExecutor)"
    if not scheduler.get("measured"):
        lines.append(_line(target, "not measured", NOT_MEASURABLE, scheduler.get("reason", "not attempted")))
    else:
        lines.append(judge_at_most(target, scheduler["overhead_s"], limit,
                                   describe(scheduler["overhead_s"]) + f" ({scheduler['url']}, executor "
                                   f"{scheduler['executor']}, night {scheduler['night']})",
                                   lambda: "the scheduler's pick-up and task start-up, with dbt's and Great "
                                           "Expectations' start-up in every task"))
    return lines


def _overhead_why(night: dict) -> str:
    dbt_startup = sum(v["wall_seconds"] - v["node_seconds"] for v in night["dbt"].values())
    gate = night["stages_s"].get("quality gate", 0.0)
    tasks = sum(night["tasks_s"].values())
    airflow = night["wall_s"] - tasks
    return (f"dbt start-up {dbt_startup:.0f} s (parsing the project and connecting, once per stage), the quality "
            f"gate {gate:.0f} s (Great Expectations' context and checkpoint, with its queries), Airflow {airflow:.0f} s "
            "outside the tasks (process start, DAG parsing)")


def consortium_targets(extrapolated: dict) -> list[dict]:
    lines = []
    for key, what, limit in (("night", "a night", TARGETS["consortium_night_max_s"]),
                             ("backfill", "the backfill", TARGETS["consortium_backfill_max_s"])):
        target = f"{what} of a 10-hospital, 3-year consortium ≤ {limit / 60:.0f} min"
        predicted = extrapolated.get(key) or {"not_measurable": extrapolated.get("not_measurable", "not extrapolated")}
        if "not_measurable" in predicted:
            lines.append(_line(target, "not measurable", NOT_MEASURABLE, predicted["not_measurable"]))
            continue
        fit = extrapolated["backfill_fit" if key == "backfill" else "history_fit"]
        measured = (f"{predicted['value'] / 60:.1f} ± {predicted['standard_error'] / 60:.1f} min (extrapolated "
                    f"{predicted['beyond']:.1f}× beyond the largest measured point; the line's standard error "
                    f"{fit['standard_error']:.1f} s over {fit['points']} runs at {fit['sizes']} sizes)")
        if predicted["value"] <= limit:
            lines.append(_line(target, measured, MET, f"the prediction is within {limit / 60:.0f} min"))
        else:
            lines.append(_line(target, measured, MISSED, (
                f"{extrapolated['rows'] / 1e6:.0f} million rows at {fit['slope'] * 1e6:.1f} s per million rows "
                "measured; see the loader's and the night's lines for where the per-row cost is")))
    return lines


def memory_target(scales: list[dict]) -> dict:
    at, limit = TARGETS["peak_rss_at_multiple"], TARGETS["peak_rss_max_bytes"]
    target = f"peak RSS, Airflow and PostgreSQL together, ≤ {limit / 1024**3:.0f} GiB at {at}×"
    measured = [s for s in scales if s["backfill"].get("peak_rss_bytes", {}).get("n")]
    if not measured:
        return _line(target, "not measured", NOT_MEASURABLE, "no night succeeded")
    largest = max(measured, key=lambda s: s["scale"])
    kinds = [("backfill", largest["backfill"])] + [(f"{k}-day night", v) for k, v in largest["nights"].items()
                                                    if v.get("peak_rss_bytes", {}).get("n")]
    kind, series = max(kinds, key=lambda kv: kv[1]["peak_rss_bytes"]["median"])
    figure = {k: (v / 1024**3 if isinstance(v, (int, float)) and k != "n" else v)
              for k, v in series["peak_rss_bytes"].items() if k != "values"}
    described = describe(figure, " GiB", 2) + f" ({kind} at {largest['scale']:g}×)"
    if largest["scale"] < at:
        return _line(target, described, NOT_MEASURABLE, f"{at}× not measured (largest {largest['scale']:g}×)")
    return judge_at_most(target, figure, limit / 1024**3, described, lambda: _memory_why(series), " GiB")


def _memory_why(series: dict) -> str:
    night = median_run(_ok_runs(series), "peak_rss_bytes")
    task = night.get("peak_rss_task")
    postgres = night.get("peak_rss_postgres_bytes", 0) / 1024**3
    if not task:
        return f"PostgreSQL's processes held {postgres:.2f} GiB; the samples were not attributed to tasks"
    return (f"the peak is in {task} ({night['peak_rss_by_task_bytes'][task] / 1024**3:.2f} GiB, PostgreSQL's "
            f"processes {postgres:.2f} GiB of it at most): what it holds grows with the rows it handles")


# ---------------------------------------------------------------------------------------- output


def _cell(figure: dict, digits: int = 1, scale: float = 1.0) -> str:
    if not figure.get("n"):
        return "-"
    median = f"{figure['median'] / scale:,.{digits}f}"
    if figure["n"] == 1 or figure["min"] == figure["max"]:
        return median
    return f"{median} ({figure['min'] / scale:,.{digits}f}–{figure['max'] / scale:,.{digits}f})"


def format_table(result: dict) -> str:
    out = []
    m = result["machine"]
    out.append(f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, PostgreSQL {m['postgresql']}, "
               f"Python {m['python']}")
    out.append(f"Each figure: median (min–max) of {result['repetitions']} repetitions")
    throughput = result.get("throughput", {}).get("sources", {})
    if throughput:
        out.append(f"\nLoad throughput ({result['throughput']['scale']}, CSV files, interleaved runs; rows per second)")
        out.append(f"  {'source':<10} {'files':>6} {'rows':>10} {'loader night':>22} {'raw COPY':>24} "
                   f"{'ratio':>18} {'files only':>18}")
        for name, s in throughput.items():
            rejected = f"  ({s['files_copy_rejected']} files COPY rejects left out)" if s["files_copy_rejected"] else ""
            out.append(f"  {name:<10} {s['files']:>6} {s['rows_loader']:>10,} {_cell(s['loader_rows_per_s'], 0):>22} "
                       f"{_cell(s['copy_rows_per_s'], 0):>24} {_cell(s['ratio'], 2):>18} "
                       f"{_cell(s['files_ratio'], 2):>18}{rejected}")
    scales = result.get("scales", [])
    if scales:
        out.append("\nScales (history series: the same hospitals and volume, more months)")
        for s in scales:
            out.append(f"  {label(s)}")
        out.append("\nNights: wall seconds per stage of the median run; totals as median (min–max). Backfill = the "
                   "catch-up night; night = the next day, the same business date at every scale")
        columns = [(s, "backfill", s["backfill"]) for s in scales] + [
            (s, "night", s["nights"]["1"]) for s in scales if "1" in s["nights"]]
        columns.sort(key=lambda c: (c[0]["scale"], c[1]))
        labels = [f"{s['scale']:g}× {kind}" for s, kind, _ in columns]
        width = 28
        out.append(f"  {'':<26}" + "".join(f"{text:>{width}}" for text in labels))

        def row(text: str, value) -> str:  # type: ignore[no-untyped-def]
            cells = [value(series, median_run(_ok_runs(series))) if _ok_runs(series) else "-"
                     for _, _, series in columns]
            return f"  {text:<26}" + "".join(f"{cell:>{width}}" for cell in cells)

        out.append(row("rows loaded", lambda f, n: _cell(f["rows_loaded"], 0)))
        for stage in _STAGES:
            out.append(row(stage, lambda f, n, stage=stage: f"{n['stages_s'][stage]:.1f}"))
        out.append(row("night wall", lambda f, n: _cell(f["wall_s"])))
        out.append(row("  loader's own", lambda f, n: f"{sum(v['seconds'] for v in n['loader'].values()):.1f}"))
        out.append(row("  dbt running nodes", lambda f, n: f"{sum(v['node_seconds'] for v in n['dbt'].values()):.1f}"))
        out.append(row("  orchestration overhead", lambda f, n: _cell(f["overhead_s"])))
        out.append(row("peak RSS (MiB)", lambda f, n: _cell(f.get("peak_rss_bytes", {}), 0, 1024**2)))
        out.append(row("  of it PostgreSQL", lambda f, n: f"{n.get('peak_rss_postgres_bytes', 0) / 1024**2:,.0f}"
                       if n.get("postgres_measured") else "not seen"))
        failed = [f"{s['scale']:g}× {kind} ({series['failed']})" for s, kind, series in columns if series["failed"]]
        if failed:
            out.append(f"  FAILED runs: {', '.join(failed)} (see their logs)")
        for s in scales:
            if len(s["nights"]) > 1:
                out.append(f"\nDelta series at {s['scale']:g}× (history fixed at {s['history_rows']['total']:,} rows; "
                           f"the night k days after the backfill catches up k days)")
                out.append(f"  {'days':>5} {'rows loaded':>24} {'night wall s':>24} {'overhead s':>24}")
                for days, series in s["nights"].items():
                    out.append(f"  {days:>5} {_cell(series['rows_loaded'], 0):>24} {_cell(series['wall_s']):>24} "
                               f"{_cell(series['overhead_s']):>24}")
    extrapolated = result.get("extrapolation") or {}
    if "rows" in extrapolated:
        out.append(f"\nConsortium of 10 hospitals × 3 years: about {extrapolated['rows'] / 1e6:.0f} million rows "
                   f"({extrapolated['rows_per_visit']} per visit, {extrapolated['rows_per_stay']} per stay), "
                   f"a night's delta about {extrapolated['night_delta_rows']:,.0f} rows")
        for key, what in (("backfill_fit", "backfill against its rows"), ("history_fit", "night against history"),
                          ("delta_fit", "night against its delta")):
            fit = extrapolated[key]
            if "not_measurable" in fit:
                out.append(f"  {what}: no line ({fit['not_measurable']})")
            else:
                out.append(f"  {what}: {fit['intercept']:.1f} s + {fit['slope'] * 1e6:.2f} s per million rows "
                           f"(± {fit['slope_standard_error'] * 1e6:.2f}), standard error {fit['standard_error']:.1f} s, "
                           f"R² {fit['r2']:.3f}, {fit['points']} runs at {fit['sizes']} sizes")
        out.append(f"  method: {extrapolated['method']}")
    scheduler = result.get("scheduler") or {}
    out.append("\nUnder the scheduler: " + (
        f"{scheduler['url']} (executor {scheduler['executor']}), night {scheduler['night']}: wall "
        f"{_cell(scheduler['wall_s'])} s, overhead {_cell(scheduler['overhead_s'])} s" if scheduler.get("measured")
        else "not measured: " + scheduler.get("reason", "not attempted")))
    out.append("\nTargets")
    for line in result["targets"]:
        out.append(f"  [{line['verdict']}] {line['target']}: {line['measured']}")
        out.append(f"      {'why' if line['verdict'] != MET else 'so'}: {line['why']}")
    return "\n".join(out)


def plan_scales(args: argparse.Namespace) -> list[Scale]:
    if args.quick:
        return [Scale.of(2, 3, 0.1)]
    if args.consortium_quarter:
        q = CONSORTIUM_QUARTER
        return [Scale.of(q["hospitals"], months, q["his_volume"]) for months in q["months"]]
    unknown = [k for k in args.scales if k not in SCALES]
    if unknown:
        raise SystemExit(f"unknown scales {unknown}: choose from {sorted(SCALES)}")
    return [Scale.of(*SCALES[k], args.his_volume) for k in sorted(args.scales)]


def run(args: argparse.Namespace) -> int:
    base = args.home or settings().var_dir / "bench"
    base.mkdir(parents=True, exist_ok=True)
    prefix = args.database_prefix
    scales = plan_scales(args)
    for scale in scales:
        too_big = generator_fits_in_memory(scale)
        if too_big:
            raise SystemExit(f"cannot generate {scale.name}: {too_big}")
    warehouse.start()
    end = args.end
    delta_days = tuple(sorted(set(args.delta_days) | {1}))
    started = time.perf_counter()
    result: dict = {"started_at": datetime.now().isoformat(timespec="seconds"), "end": end.isoformat(),
                    "quick": bool(args.quick), "consortium_quarter": bool(args.consortium_quarter),
                    "repetitions": args.repetitions, "delta_days": list(delta_days), "machine": machine(),
                    "scales": []}
    for position, scale in enumerate(scales):
        deltas = delta_days if position == 0 else (1,)  # the delta series at the first (smallest) scale
        print(f"[bench] {scale.multiple:g}×: {scale.hospitals} hospitals × {scale.months} months (HIS volume "
              f"{scale.his_volume:g}), {args.repetitions} repetitions of the backfill and of the nights "
              f"{', '.join(f'+{d}d' for d in deltas)} …", flush=True)
        # with no deployment named, the first scale also runs its one-day night under the local scheduler
        local_scheduler = position == 0 and not args.airflow_api and not args.no_scheduler
        measured = measure_scale(scale, base, end, prefix, delta_days=deltas, repetitions=args.repetitions,
                                 scheduler_repetitions=args.repetitions if local_scheduler else 0)
        if "scheduler" in measured:
            result["scheduler"] = measured.pop("scheduler") | {"scale": label(measured)}
        result["scales"].append(measured)
        if position == 0 and args.throughput_repetitions > 0:
            print(f"[bench] load throughput at {scale.multiple:g}×, {args.throughput_repetitions} repetitions …",
                  flush=True)
            his_url = warehouse.with_database(warehouse.url(), f"{prefix}_his_{scale.name}")
            result["throughput"] = measure_throughput(Path(measured["root"]), his_url, end,
                                                      args.throughput_repetitions, prefix) | {"scale": label(measured)}
    if args.airflow_api:
        api = SchedulerTrigger(args.airflow_api, os.environ.get("AIRFLOW_API_USER"),
                               os.environ.get("AIRFLOW_API_PASSWORD"))
        result["scheduler"] = measure_scheduler(api, args.repetitions, args.scheduler_night)
    elif args.no_scheduler:
        result["scheduler"] = {"measured": False, "reason": "skipped (--no-scheduler)"}
    result["extrapolation"] = extrapolate(result["scales"])
    result["targets"] = targets(result)
    result["seconds"] = round(time.perf_counter() - started)
    out = base / f"{datetime.now():%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    print(format_table(result))
    print(f"\nfigures: {out}")
    return 0 if all(s["backfill"]["runs"] and not s["backfill"]["failed"] and s["nights"]
                    and not any(n["failed"] for n in s["nights"].values()) for s in result["scales"]) else 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scales", type=lambda text: [int(k) for k in text.split(",")], default=[1, 4, 16],
                        help=f"history sizes as multiples of the demo's 3 hospitals × 6 months, the hospitals held "
                             f"and the months grown, from {sorted(SCALES)} (default 1,4,16)")
    parser.add_argument("--repetitions", type=int, default=MIN_REPETITIONS,
                        help=f"runs of each night (backfill and measured nights), and of the scheduler's night; "
                             f"a target needs at least {MIN_REPETITIONS} (default {MIN_REPETITIONS})")
    parser.add_argument("--throughput-repetitions", type=int, default=MIN_REPETITIONS,
                        help="interleaved loader / raw COPY runs for the throughput (default 3; 0 skips it)")
    parser.add_argument("--delta-days", type=lambda text: [int(k) for k in text.split(",")],
                        default=list(DEFAULT_DELTA_DAYS),
                        help="the delta series at the first scale: nights this many days after the backfill, "
                             "each catching up that many days (default 1,4,16; 1 is always measured)")
    parser.add_argument("--his-volume", type=float, default=1.0,
                        help="HIS beds and outpatient volume per hospital, as generate_his's scale (default 1.0)")
    parser.add_argument("--consortium-quarter", action="store_true",
                        help=f"opt-in: the history series at {CONSORTIUM_QUARTER['hospitals']} hospitals, HIS volume "
                             f"{CONSORTIUM_QUARTER['his_volume']:g}, {CONSORTIUM_QUARTER['months']} months (the "
                             "largest about a quarter of a 10-hospital, 3-year consortium); takes hours")
    parser.add_argument("--airflow-api", default=os.environ.get("AIRFLOW_API_URL"),
                        help="a running Airflow deployment's base URL (e.g. http://localhost:8080; default "
                             "AIRFLOW_API_URL) to measure the overhead under its scheduler; user and password from "
                             "AIRFLOW_API_USER / AIRFLOW_API_PASSWORD")
    parser.add_argument("--no-scheduler", action="store_true",
                        help="do not start the local Airflow deployment (API server, scheduler with LocalExecutor, "
                             "DAG processor) that, with no --airflow-api, runs the first scale's one-day night "
                             "under the real scheduler")
    parser.add_argument("--scheduler-night", type=date.fromisoformat, default=None,
                        help="the business date to run on the deployment (default its latest successful night)")
    parser.add_argument("--end", type=date.fromisoformat, default=date.today() - timedelta(days=1),
                        help="last business date of the generated history (default yesterday)")
    parser.add_argument("--home", type=Path, default=None,
                        help="where the generated sources, Airflow homes and JSON figures go (default var/bench)")
    parser.add_argument("--database-prefix", default="bench",
                        help="prefix of the databases the benchmark creates on the warehouse server (default bench)")
    parser.add_argument("--quick", action="store_true",
                        help="one tiny scale (2 hospitals × 3 months, HIS volume 0.1): checks the benchmark runs")
