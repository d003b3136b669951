"""`hospital-ops bench`: what a night costs, measured on generated history at several sizes.

Hospitals judge a nightly pipeline by whether it finishes before the morning and keeps doing so as
years of history pile up. The benchmark measures, on this machine:

- **Load throughput.** For each source's CSV files at one scale: the loader (`load_night`) and, in
  the same run and interleaved with it (the order alternates), a plain `COPY … FROM STDIN (FORMAT
  csv)` of the same files into scratch tables of text columns, in one transaction per source like
  the loader. Several repetitions; medians. A file COPY cannot read as it is (a row with the wrong
  number of cells) is left out of both sides' figures and counted; Excel workbooks have no raw COPY
  to compare with and are left out.
- **A night against history.** History is generated at each scale (multiples of the demo's
  hospitals × months) into its own warehouse database, HIS database, inbox and Airflow home; the
  nightly DAG then runs with `airflow dags test` twice: the first night catches up on the whole
  history (the backfill), the second is an ordinary incremental night.
- **Stage wall times** from the night's Airflow log (`[DAG TEST] starting/end task` lines), the
  loader's own time (its log line per source) and dbt's own time running nodes (its log line per
  stage, from dbt's run result).
- **Orchestration overhead**: the night's wall time minus the work, where the work is the extract
  tasks (SQL read and landing files), the loader's own time and dbt's own elapsed time running its
  nodes (several at once, with its threads). What remains is
  Airflow (process start, DAG parsing, task start), dbt's start-up (parsing, connections) and Great
  Expectations (context, data source, checkpoint, Data Docs) — the GE validation queries are counted
  as overhead too, as the gate does not time them separately.
- **Peak memory**: the summed RSS of the `airflow dags test` process tree, sampled every 0.2 s (the
  PostgreSQL server is not included: its shared buffers are fixed by its configuration).
- **Extrapolation** to a 10-hospital, 3-year consortium (60 million outpatient visits, 1.2 million
  inpatient stays): rows per visit and per stay from the largest scale, then a straight line
  (least squares) through the measured scales: backfill seconds against the backfill's rows, an
  incremental night's seconds against the history's rows.

Each target line says met or MISSED, and a missed target says why from what was measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import threading
import time
from contextlib import closing
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import psycopg2

from hospital_ops import warehouse
from hospital_ops.config import environment, settings

# scale multiple → (hospitals, months) of history; 1× is the demo's 3 hospitals × 6 months
SCALES: dict[int, tuple[int, int]] = {1: (3, 6), 2: (3, 12), 4: (6, 12), 8: (6, 24), 16: (9, 32)}
CONSORTIUM = {"hospitals": 10, "years": 3, "outpatient_visits": 60_000_000, "inpatient_stays": 1_200_000}
TARGETS = {
    "loader_vs_copy_min": 0.8,
    "night_growth_max": 1.2,
    "overhead_max_s": 30.0,
    "consortium_night_max_s": 300.0,
    "consortium_backfill_max_s": 3600.0,
    "peak_rss_max_bytes": 2 * 1024**3,
}
BENCH_KEY = "hospital-ops-bench"  # pseudonym key of the generated data: nothing real is hashed
_TASK_EDGE = re.compile(r"^(\S+Z) .*\[DAG TEST\] (starting|end task) task_id=(\w+)")
_LOADER_LINE = re.compile(r"(\w+) night \S+: (\d+) files, (\d+) rows read, (\d+) loaded, (\d+) quarantined in ([\d.]+) s")
_DBT_SLOWEST = re.compile(r"dbt stage (\w+) slowest nodes: (.+)$", re.M)
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
    multiple: float
    hospitals: int
    months: int
    his_volume: float  # generate_his's scale: beds and outpatient volume per hospital

    @property
    def name(self) -> str:
        return f"x{self.multiple:g}".replace(".", "_")


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
    from hospital_ops.generate.his import generate_his
    from hospital_ops.generate.insurance import generate_insurance
    from hospital_ops.generate.referral import generate_referral
    from hospital_ops.generate.survey import generate_survey
    from hospital_ops.generate.vendor import generate_vendor_source

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
        for number, entry in enumerate(manifest):
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
    """The loader's rows read and seconds per file, and the night's wall time, on empty raw tables."""
    from hospital_ops.load.loader import load_night

    with conn.cursor() as cur:
        cur.execute("drop schema if exists raw cascade")
    conn.commit()
    started = time.perf_counter()
    night = load_night(conn, source, manifest, run_id="bench", batch_date=end, key=BENCH_KEY.encode())
    wall = time.perf_counter() - started
    return {f.source_file: (f.rows_read, f.seconds) for f in night.files}, wall


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
                both = [f for f in copied if f in loader]
                rows_loader = sum(loader[f][0] for f in both)
                rows_copy = sum(copied[f][0] for f in both)
                seconds_loader = sum(loader[f][1] for f in both)
                seconds_copy = sum(copied[f][1] for f in both)
                runs.append({"rows_loader": rows_loader, "rows_copy": rows_copy,
                             "loader_rows_per_s": rows_loader / seconds_loader if seconds_loader else 0.0,
                             "copy_rows_per_s": rows_copy / seconds_copy if seconds_copy else 0.0,
                             "loader_night_s": loader_wall, "files_copy_rejected": len(loader) - len(both)})
            loader_rate = statistics.median(r["loader_rows_per_s"] for r in runs)
            copy_rate = statistics.median(r["copy_rows_per_s"] for r in runs)
            sources[name] = {
                "files": len(manifest), "files_copy_rejected": runs[0]["files_copy_rejected"],
                "rows_loader": runs[0]["rows_loader"], "rows_copy": runs[0]["rows_copy"],
                "loader_rows_per_s": round(loader_rate), "copy_rows_per_s": round(copy_rate),
                "ratio": round(loader_rate / copy_rate, 3) if copy_rate else None,
                "loader_night_s_median": round(statistics.median(r["loader_night_s"] for r in runs), 2),
                "repetitions": runs,
            }
    warehouse.drop_database(f"{prefix}_throughput")
    return {"repetitions": repetitions, "sources": sources}


# ----------------------------------------------------------------------------------------- nights


class _PeakRss:
    """Summed RSS of this process's descendants (the `airflow dags test` tree), sampled in a thread."""

    def __init__(self, interval: float = 0.2) -> None:
        import psutil

        self._psutil = psutil
        self._interval = interval
        self._stop = threading.Event()
        self.peak = 0
        self.samples: list[tuple[float, int]] = []  # (epoch seconds, summed RSS)
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = self._psutil.Process()
        while not self._stop.is_set():
            total = 0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except self._psutil.Error:
                    continue
            self.peak = max(self.peak, total)
            self.samples.append((time.time(), total))
            self._stop.wait(self._interval)

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def parse_night_log(text: str) -> dict:
    """Task spans, the loader's and dbt's own times, from a night's `airflow dags test` log."""
    started: dict[str, datetime] = {}
    tasks: dict[str, float] = {}
    spans: dict[str, tuple[float, float]] = {}
    for line in text.splitlines():
        match = _TASK_EDGE.match(line)
        if not match:
            continue
        stamp = datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))
        if match.group(2) == "starting":
            started[match.group(3)] = stamp
        elif match.group(3) in started:
            began = started.pop(match.group(3))
            tasks[match.group(3)] = (stamp - began).total_seconds()
            spans[match.group(3)] = (began.timestamp(), stamp.timestamp())
    loader = {m.group(1): {"files": int(m.group(2)), "rows_read": int(m.group(3)), "rows_loaded": int(m.group(4)),
                           "seconds": float(m.group(6))} for m in _LOADER_LINE.finditer(text)}
    dbt = {m.group(1): {"nodes": int(m.group(2)), "node_seconds": float(m.group(3)), "wall_seconds": float(m.group(4))}
           for m in _DBT_LINE.finditer(text)}
    for m in _DBT_SLOWEST.finditer(text):
        if m.group(1) in dbt:
            dbt[m.group(1)]["slowest"] = {n.group(1): float(n.group(2)) for n in _DBT_NODE.finditer(m.group(2))}
    return {"tasks": tasks, "spans": spans, "loader": loader, "dbt": dbt}


def _stage_times(tasks: dict[str, float]) -> dict[str, float]:
    return {stage: round(sum(s for t, s in tasks.items() if any(t.startswith(p) for p in prefixes)), 2)
            for stage, prefixes in _STAGES.items()}


def run_bench_night(night: date, database_url: str) -> dict:
    """Run the DAG for one night and take its measurements."""
    from hospital_ops.airflow_local import run_night

    started = time.perf_counter()
    with _PeakRss() as rss:
        run = run_night(night, database_url)
    wall = time.perf_counter() - started
    parsed = parse_night_log(run.log_file.read_text(errors="replace"))
    extract_s = sum(s for t, s in parsed["tasks"].items() if t.startswith("extract_"))
    loader_s = sum(v["seconds"] for v in parsed["loader"].values())
    dbt_nodes_s = sum(v["node_seconds"] for v in parsed["dbt"].values())
    work = extract_s + loader_s + dbt_nodes_s
    by_task = {task: max(samples_in(rss.samples, span), default=0) for task, span in parsed["spans"].items()}
    return {
        "night": night.isoformat(), "succeeded": run.succeeded, "failed_tasks": run.failed_tasks,
        "log": str(run.log_file), "wall_s": round(wall, 2), "stages_s": _stage_times(parsed["tasks"]),
        "tasks_s": {t: round(s, 2) for t, s in sorted(parsed["tasks"].items())},
        "loader": parsed["loader"], "dbt": parsed["dbt"],
        "rows_loaded": sum(v["rows_loaded"] for v in parsed["loader"].values()),
        "work_s": round(work, 2), "overhead_s": round(wall - work, 2), "peak_rss_bytes": rss.peak,
        "peak_rss_by_task_bytes": by_task,
        "peak_rss_task": max(by_task, key=by_task.get) if by_task else None,
    }


def samples_in(samples: list[tuple[float, int]], span: tuple[float, float]):  # type: ignore[no-untyped-def]
    """The RSS samples taken while a task ran."""
    return (rss for at, rss in samples if span[0] <= at <= span[1])


def _airflow_template(base: Path) -> Path:
    """One migrated Airflow metadata database, copied into each scale's home (a migration takes a while)."""
    from hospital_ops.airflow_local import airflow_env, ensure_metadata_db

    template = base / "airflow_template"
    if not (template / ".migrated").exists():
        template.mkdir(parents=True, exist_ok=True)
        env = airflow_env(warehouse.url()) | {"AIRFLOW_HOME": str(template)}
        ensure_metadata_db(env)
    return template


def measure_scale(scale: Scale, base: Path, end: date, prefix: str) -> dict:
    from hospital_ops.generate.survey_api import simulated_survey_api

    root = base / scale.name
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    template = _airflow_template(base)
    (root / "airflow").mkdir()
    for name in ("airflow.db", ".migrated"):  # not airflow.cfg: it names the template's own paths
        shutil.copy2(template / name, root / "airflow" / name)
    generated = generate_scale(scale, root, end, prefix)
    database_url = warehouse.create_database(f"{prefix}_{scale.name}", replace=True)
    with _bench_environment(scale, root, database_url, generated["his_url"]), \
            simulated_survey_api(generated["survey_records"]):
        backfill = run_bench_night(end - timedelta(days=1), database_url)
        incremental = run_bench_night(end, database_url) if backfill["succeeded"] else None
        history = _history_rows(database_url)
    return {"scale": scale.multiple, "hospitals": scale.hospitals, "months": scale.months,
            "his_volume": scale.his_volume, "root": str(root), "database": database_url,
            "generated": {k: v for k, v in generated.items() if k not in ("his_url", "survey_records")},
            "history_rows": history, "backfill": backfill, "incremental": incremental}


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


# ---------------------------------------------------------------------------------- extrapolation


def _line(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares intercept and slope."""
    fit = statistics.linear_regression([x for x, _ in points], [y for _, y in points])
    return fit.intercept, fit.slope


def extrapolate(scales: list[dict]) -> dict:
    measured = [s for s in scales if s["incremental"] and s["backfill"]["succeeded"]]
    if len(measured) < 2:  # a line needs two sizes: one point cannot tell fixed cost from per-row cost
        return {"skipped": f"needs two measured scales, has {len(measured)}"}
    largest = max(measured, key=lambda s: s["history_rows"]["total"])
    tables = largest["history_rows"]["tables"]
    visits, stays = tables.get("his__outpatient_visits", 0), tables.get("his__inpatient_stays", 0)
    if not visits or not stays:
        return {}
    per_visit = (visits + largest["history_rows"]["charges_of_visits"] + tables.get("his__patients", 0)) / visits
    stay_rows = (stays + largest["history_rows"]["charges_of_stays"] + tables.get("his__diagnoses", 0)
                 + tables.get("his__surgeries", 0) + tables.get("insurance__settlements", 0))
    per_stay = stay_rows / stays
    target_rows = CONSORTIUM["outpatient_visits"] * per_visit + CONSORTIUM["inpatient_stays"] * per_stay
    backfill_fit = _line([(s["backfill"]["rows_loaded"], s["backfill"]["wall_s"]) for s in measured])
    night_fit = _line([(s["history_rows"]["total"], s["incremental"]["wall_s"]) for s in measured])
    return {
        "method": ("rows per outpatient visit and per inpatient stay from the largest measured scale (visits, their "
                   "charges and patients; stays, their charges, diagnoses, surgeries and settlements); then a "
                   "least-squares line through the measured scales: backfill wall time against the backfill's "
                   "rows, incremental night wall time against the rows of history in raw"),
        "rows_per_visit": round(per_visit, 2), "rows_per_stay": round(per_stay, 2),
        "consortium_rows": round(target_rows),
        "backfill_fit": {"intercept_s": round(backfill_fit[0], 2), "s_per_million_rows": round(backfill_fit[1] * 1e6, 2)},
        "night_fit": {"intercept_s": round(night_fit[0], 2), "s_per_million_rows": round(night_fit[1] * 1e6, 2)},
        "backfill_s": round(backfill_fit[0] + backfill_fit[1] * target_rows),
        "night_s": round(night_fit[0] + night_fit[1] * target_rows),
        "points": len(measured),
    }


# ---------------------------------------------------------------------------------------- verdicts


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def targets(result: dict) -> list[dict]:
    """Each target with the measured figure, met / MISSED, and for a miss why, from the figures."""
    lines = []
    throughput = result.get("throughput", {}).get("sources", {})
    if throughput:
        worst = min(throughput.items(), key=lambda kv: kv[1]["ratio"] or 0)
        ratio = worst[1]["ratio"] or 0
        lines.append({
            "target": f"loader ≥ {TARGETS['loader_vs_copy_min']}× raw COPY", "measured": f"{ratio:.2f}× ({worst[0]}, the lowest)",
            "verdict": _verdict(ratio >= TARGETS["loader_vs_copy_min"]),
            "why": None if ratio >= TARGETS["loader_vs_copy_min"] else (
                "the loader writes every row twice (COPY into a landing table, then one INSERT … SELECT into raw "
                "with an index on _batch_date) and, in between, converts and checks every cell in SQL on one "
                "backend (one core): stripping, pg_input_is_valid and casts for dates and numbers, allowed values, "
                "references, HMAC of personal identifiers, the row hash and the duplicate lookup. A raw COPY only "
                "parses CSV into text columns. Closing the gap needs the checks inside COPY itself (typed columns "
                "with COPY … ON_ERROR and a second pass only for the rejected rows) or splitting a file across "
                "two backends; neither keeps one transaction per night as simply."),
        })
    scales = [s for s in result.get("scales", []) if s.get("incremental")]
    if len(scales) >= 2:
        small, large = scales[0], scales[-1]
        growth = large["incremental"]["wall_s"] / small["incremental"]["wall_s"]
        grown = sorted(((stage, large["incremental"]["stages_s"][stage] - small["incremental"]["stages_s"][stage])
                        for stage in _STAGES), key=lambda kv: -kv[1])[:3]
        lines.append({
            "target": f"night at the largest history ≤ {TARGETS['night_growth_max']}× the night at the smallest",
            "measured": f"{growth:.2f}× ({large['scale']:g}× history vs {small['scale']:g}×)",
            "verdict": _verdict(growth <= TARGETS["night_growth_max"]),
            "why": None if growth <= TARGETS["night_growth_max"] else (
                "the stages that grew most: " + ", ".join(f"{stage} +{delta:.0f} s" for stage, delta in grown)
                + _grown_nodes(small["incremental"], large["incremental"])),
        })
    nights = [(s["scale"], kind, s[kind]) for s in result.get("scales", []) for kind in ("incremental",) if s.get(kind)]
    if nights:
        worst_overhead = max(nights, key=lambda n: n[2]["overhead_s"])
        overhead = worst_overhead[2]["overhead_s"]
        lines.append({
            "target": f"orchestration overhead ≤ {TARGETS['overhead_max_s']:.0f} s a night",
            "measured": f"{overhead:.0f} s (incremental night at {worst_overhead[0]:g}×, the highest)",
            "verdict": _verdict(overhead <= TARGETS["overhead_max_s"]),
            "why": None if overhead <= TARGETS["overhead_max_s"] else _overhead_why(worst_overhead[2]),
        })
    extrapolated = result.get("extrapolation") or {}
    if "skipped" in extrapolated:
        lines.append({"target": "a night ≤ 5 min and the backfill ≤ 60 min for a 10-hospital, 3-year consortium",
                      "measured": "not extrapolated: " + extrapolated["skipped"], "verdict": "not measured",
                      "why": None})
    elif extrapolated:
        for key, label, limit in (("night_s", "a night", TARGETS["consortium_night_max_s"]),
                                  ("backfill_s", "the backfill", TARGETS["consortium_backfill_max_s"])):
            value = extrapolated[key]
            lines.append({
                "target": f"{label} of a 10-hospital, 3-year consortium ≤ {limit / 60:.0f} min",
                "measured": f"{value / 60:.1f} min (extrapolated from {extrapolated['points']} scales)",
                "verdict": _verdict(value <= limit),
                "why": None if value <= limit else (
                    f"{extrapolated['consortium_rows'] / 1e6:.0f} million rows at the measured "
                    f"{extrapolated['backfill_fit' if key == 'backfill_s' else 'night_fit']['s_per_million_rows']:.0f} s "
                    "per million rows; the per-row cost is the loader's checks and dbt's full rebuilds "
                    "(see the lines above)"),
            })
    if result.get("scales"):
        largest = result["scales"][-1]
        peaks = [largest[k]["peak_rss_bytes"] for k in ("backfill", "incremental") if largest.get(k)]
        peak = max(peaks)
        lines.append({
            "target": f"peak RSS ≤ {TARGETS['peak_rss_max_bytes'] / 1024**3:.0f} GiB at 16×",
            "measured": f"{peak / 1024**3:.2f} GiB at {largest['scale']:g}×"
                        + ("" if largest["scale"] >= 16 else " (16× not measured)"),
            "verdict": _verdict(peak <= TARGETS["peak_rss_max_bytes"]) + ("" if largest["scale"] >= 16 else " so far"),
            "why": None if peak <= TARGETS["peak_rss_max_bytes"] else _memory_why(largest),
        })
    return lines


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


def _memory_why(scale: dict) -> str:
    night = max((scale[k] for k in ("backfill", "incremental") if scale.get(k)), key=lambda n: n["peak_rss_bytes"])
    task = night.get("peak_rss_task")
    if not task:
        return "the night's samples were not attributed to tasks"
    return (f"the peak is in {task} ({night['peak_rss_by_task_bytes'][task] / 1024**3:.2f} GiB) of the "
            f"{'backfill' if night is scale['backfill'] else 'incremental night'}: what that task holds in memory "
            "grows with the rows it handles instead of being streamed")


def _overhead_why(night: dict) -> str:
    dbt_startup = sum(v["wall_seconds"] - v["node_seconds"] for v in night["dbt"].values())
    gate = night["stages_s"].get("quality gate", 0.0)
    tasks = sum(night["tasks_s"].values())
    airflow = night["wall_s"] - tasks
    return (f"dbt start-up {dbt_startup:.0f} s (parsing the project and connecting, once per stage), the quality "
            f"gate {gate:.0f} s (Great Expectations' context and checkpoint, with its queries), Airflow {airflow:.0f} s "
            "outside the tasks (process start, DAG parsing); keeping dbt's partial-parse state between stages and a "
            "resident Airflow scheduler instead of `airflow dags test` would remove most of it")


# ---------------------------------------------------------------------------------------- output


def format_table(result: dict) -> str:
    out = []
    m = result["machine"]
    out.append(f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, PostgreSQL {m['postgresql']}, "
               f"Python {m['python']}")
    throughput = result.get("throughput", {}).get("sources", {})
    if throughput:
        out.append(f"\nLoad throughput ({result['throughput']['scale']:g}× sources, CSV files, median of "
                   f"{result['throughput']['repetitions']} interleaved runs)")
        out.append(f"  {'source':<10} {'files':>6} {'rows':>10} {'loader rows/s':>14} {'raw COPY rows/s':>16} {'ratio':>6}")
        for name, s in throughput.items():
            rejected = f"  ({s['files_copy_rejected']} files COPY rejects left out)" if s["files_copy_rejected"] else ""
            out.append(f"  {name:<10} {s['files']:>6} {s['rows_loader']:>10,} {s['loader_rows_per_s']:>14,} "
                       f"{s['copy_rows_per_s']:>16,} {s['ratio'] or 0:>5.2f}×{rejected}")
    scales = result.get("scales", [])
    if scales:
        out.append("\nNights: wall seconds per stage (backfill = the first, catch-up night; night = the next, "
                   "incremental one)")
        columns = [(s, kind) for s in scales for kind in ("backfill", "incremental")]
        labels = [f"{s['scale']:g}× {'backfill' if kind == 'backfill' else 'night'}" for s, kind in columns]
        out.append(f"  {'':<26}" + "".join(f"{label:>14}" for label in labels))

        def row(label: str, value) -> str:  # type: ignore[no-untyped-def]
            cells = [value(s, s[kind]) if s.get(kind) else "-" for s, kind in columns]
            return f"  {label:<26}" + "".join(f"{cell:>14}" for cell in cells)

        out.append(row("history rows in raw", lambda s, n: f"{s['history_rows']['total']:,}"))
        out.append(row("rows loaded", lambda s, n: f"{n['rows_loaded']:,}"))
        for stage in _STAGES:
            out.append(row(stage, lambda s, n, stage=stage: f"{n['stages_s'][stage]:.1f}"))
        out.append(row("night wall", lambda s, n: f"{n['wall_s']:.1f}"))
        out.append(row("  loader's own", lambda s, n: f"{sum(v['seconds'] for v in n['loader'].values()):.1f}"))
        out.append(row("  dbt running nodes", lambda s, n: f"{sum(v['node_seconds'] for v in n['dbt'].values()):.1f}"))
        out.append(row("  orchestration overhead", lambda s, n: f"{n['overhead_s']:.1f}"))
        out.append(row("peak RSS (MiB)", lambda s, n: f"{n['peak_rss_bytes'] / 1024**2:,.0f}"))
        failed = [f"{s['scale']:g}× {k}" for s, k in columns if s.get(k) and not s[k]["succeeded"]]
        if failed:
            out.append(f"  FAILED nights: {', '.join(failed)} (see their logs)")
    extrapolated = result.get("extrapolation")
    if extrapolated and "skipped" not in extrapolated:
        out.append(f"\nConsortium of 10 hospitals × 3 years: about {extrapolated['consortium_rows'] / 1e6:.0f} million rows "
                   f"({extrapolated['rows_per_visit']} per visit, {extrapolated['rows_per_stay']} per stay); "
                   f"backfill ≈ {extrapolated['backfill_s'] / 60:.0f} min, a night ≈ {extrapolated['night_s'] / 60:.1f} min")
        out.append(f"  method: {extrapolated['method']}")
    out.append("\nTargets")
    for line in result["targets"]:
        out.append(f"  [{line['verdict']}] {line['target']}: {line['measured']}")
        if line["why"]:
            out.append(f"      why: {line['why']}")
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    base = args.home or settings().var_dir / "bench"
    base.mkdir(parents=True, exist_ok=True)
    prefix = args.database_prefix
    warehouse.start()
    end = args.end
    unknown = [k for k in args.scales if k not in SCALES]
    if unknown:
        raise SystemExit(f"unknown scales {unknown}: choose from {sorted(SCALES)}")
    if args.quick:
        scales = [Scale(1, 2, 3, 0.1)]
    else:
        scales = [Scale(k, *SCALES[k], args.his_volume) for k in args.scales]
    started = time.perf_counter()
    result: dict = {"started_at": datetime.now().isoformat(timespec="seconds"), "end": end.isoformat(),
                    "quick": bool(args.quick), "machine": machine(), "scales": []}
    for position, scale in enumerate(scales):
        print(f"[bench] {scale.multiple:g}×: {scale.hospitals} hospitals × {scale.months} months "
              f"(HIS volume {scale.his_volume:g}) …", flush=True)
        measured = measure_scale(scale, base, end, prefix)
        result["scales"].append(measured)
        if position == 0 and args.repetitions > 0:
            print(f"[bench] load throughput at {scale.multiple:g}×, {args.repetitions} repetitions …", flush=True)
            his_url = warehouse.url(f"{prefix}_his_{scale.name}")
            result["throughput"] = measure_throughput(Path(measured["root"]), his_url, end, args.repetitions,
                                                      prefix) | {"scale": scale.multiple}
    result["extrapolation"] = extrapolate(result["scales"])
    result["targets"] = targets(result)
    result["seconds"] = round(time.perf_counter() - started)
    out = base / f"{datetime.now():%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    print(format_table(result))
    print(f"\nfigures: {out}")
    return 0 if all(s["backfill"]["succeeded"] and s["incremental"] and s["incremental"]["succeeded"]
                    for s in result["scales"]) else 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scales", type=lambda text: [int(k) for k in text.split(",")], default=[1, 4, 16],
                        help=f"history sizes as multiples of the demo's hospitals × months, from {sorted(SCALES)} "
                             "(default 1,4,16)")
    parser.add_argument("--repetitions", type=int, default=3,
                        help="interleaved loader / raw COPY runs for the throughput (default 3; 0 skips it)")
    parser.add_argument("--his-volume", type=float, default=1.0,
                        help="HIS beds and outpatient volume per hospital, as generate_his's scale (default 1.0)")
    parser.add_argument("--end", type=date.fromisoformat, default=date.today() - timedelta(days=1),
                        help="last business date of the generated history (default yesterday)")
    parser.add_argument("--home", type=Path, default=None,
                        help="where the generated sources, Airflow homes and JSON figures go (default var/bench)")
    parser.add_argument("--database-prefix", default="bench",
                        help="prefix of the databases the benchmark creates on the warehouse server (default bench)")
    parser.add_argument("--quick", action="store_true",
                        help="one tiny scale (2 hospitals × 3 months, HIS volume 0.1): checks the benchmark runs")
