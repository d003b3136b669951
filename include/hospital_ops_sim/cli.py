"""`hospital-ops-sim`: the simulated hospital sources, for development, the demo and the benchmark.

    hospital-ops-sim generate [--end DATE] [--months N] [--vendors N] [--fresh]
                                           write the simulated sources: vendor drop folders, the HIS
                                           database his_sim, insurance, the survey platform's records, referrals
    hospital-ops-sim demo [--scheduler]    generate, then run the last few nights end to end, then the dbt docs
                                           (--scheduler: through the local Airflow deployment, not `dags test`)
    hospital-ops-sim run-night DATE [--force-publish]
                                           `hospital-ops run-night` with the simulated HIS and survey platform
    hospital-ops-sim airflow up|down|status|backfill …
                                           `hospital-ops airflow …` with the simulated HIS as its HIS
    hospital-ops-sim bench [--scales 1,4,16] [--repetitions N] [--quick]
                                           load throughput against raw COPY, nights against history size

This package drives the product (`hospital_ops`) and imports from it; the product never imports this
package, and the Airflow image does not contain it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import date, timedelta

from hospital_ops import warehouse
from hospital_ops.cli import (
    _date,
    _print_airflow_login,
    _progress,
    _publish_dbt_docs,
    _run_nights_with_sources,
    run,
)
from hospital_ops.config import settings

HIS_SIM_DATABASE = "his_sim"


def cmd_generate(args: argparse.Namespace) -> int:
    from hospital_ops_sim.his import create_his_database, generate_his
    from hospital_ops_sim.insurance import generate_insurance
    from hospital_ops_sim.referral import generate_referral
    from hospital_ops_sim.survey import generate_survey
    from hospital_ops_sim.vendor import generate_vendor_source

    inbox = settings().inbox_dir
    if args.fresh and inbox.exists():
        shutil.rmtree(inbox)
    result = generate_vendor_source(inbox, end=args.end, months=args.months, vendors=args.vendors,
                                    hospitals=args.hospitals, seed=args.seed)
    _progress(f"vendor source: {result.files_written} files from {result.start} to {result.end} in {inbox}")
    if not warehouse.is_external():
        his_url = warehouse.create_database(HIS_SIM_DATABASE, replace=True)
        create_his_database(his_url)
        his = generate_his(his_url, end=args.end, months=args.months, hospitals=args.hospitals, seed=args.seed)
        _write_his_scenarios(his.facts)
        counts = ", ".join(f"{n} {table}" for table, n in his.counts.items())
        _progress(f"simulated HIS database {HIS_SIM_DATABASE}: {counts}")
        insurance = generate_insurance(his_url, inbox, end=args.end, seed=args.seed)
        counts = ", ".join(f"{n} {kind}" for kind, n in insurance.counts.items())
        _progress(f"insurance settlements: {counts}")
        survey = generate_survey(his_url, settings().survey_simulator_file, end=args.end, months=args.months,
                                 vendors=args.vendors, seed=args.seed)
        counts = ", ".join(f"{n} {entity}" for entity, n in survey.counts.items())
        _progress(f"survey platform (served by the simulator): {counts} in {survey.out_file}")
        referral = generate_referral(his_url, inbox, end=args.end, months=args.months, seed=args.seed)
        _progress(f"referral exports: {referral.files_written} files, {referral.rows_written} rows in {inbox / 'referral'}")
    return 0


def _write_his_scenarios(facts: dict) -> None:
    """What the HIS simulation planted, for `hospital-ops alerts report` (the HIS is a database, not a drop folder)."""
    from hospital_ops.alert_report import HIS_SCENARIO_FILE

    path = settings().var_dir / HIS_SCENARIO_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cost_jump": facts.get("cost_jump")}, ensure_ascii=False, indent=2) + "\n",
                    encoding="utf-8")


def _use_simulated_his() -> None:
    """Point the HIS source at the simulated HIS on the embedded server, unless HIS_URL says otherwise."""
    if os.environ.get("HIS_URL") or warehouse.is_external():
        return
    import psycopg2

    with psycopg2.connect(warehouse.url()) as conn, conn.cursor() as cur:  # pg_database is readable by all
        cur.execute("select 1 from pg_database where datname = %s", (HIS_SIM_DATABASE,))
        if cur.fetchone():
            os.environ["HIS_URL"] = warehouse.url(HIS_SIM_DATABASE)
    conn.close()


def _run_nights(nights: list[date], scheduler: bool = False) -> bool:
    """Run the DAG night by night: a compact summary after each, the full one after the last."""
    from hospital_ops_sim.survey_api import simulated_survey_api

    url = warehouse.start()
    _use_simulated_his()
    with simulated_survey_api(settings().survey_simulator_file, progress=_progress):
        if scheduler:
            return _run_nights_through_scheduler(nights, url)
        return _run_nights_with_sources(nights, url)


def _run_nights_through_scheduler(nights: list[date], url: str) -> bool:
    """The nights as the scheduler runs them (restarted so its tasks see this demo's sources)."""
    from hospital_ops import airflow_local
    from hospital_ops.pipeline import format_summary, night_summary

    airflow_local.down()
    _progress("starting the local Airflow deployment (scheduler, API server, DAG processor, triggerer) …")
    deployment = airflow_local.up(url, warehouse.admin_url(), extra_env=airflow_local.MANUAL_ONLY)
    _print_airflow_login(deployment)
    runs = airflow_local.trigger_nights(deployment, nights, progress=_progress, fresh=True)
    ok = len(runs) == len(nights) and all(run["state"] == "success" for run in runs)
    airflow_local.pause_and_stop(deployment)
    last = nights[len(runs) - 1] if runs else nights[0]
    print(format_summary(night_summary(warehouse_url=url, business_date=last), warehouse.redacted(url), detailed=True),
          flush=True)
    _progress("the nights, their durations and task logs are in Airflow's UI: `hospital-ops airflow up` (or make airflow)")
    return ok


def cmd_demo(args: argparse.Namespace) -> int:
    started = time.monotonic()
    if warehouse.is_external():
        url = warehouse.url()
        _progress(f"using the external warehouse at {warehouse.redacted(url)} (WAREHOUSE_URL); it is not reset")
    else:
        _progress("starting the embedded warehouse and resetting its demo database")
        url = warehouse.reset_database()
        _progress(f"warehouse at {warehouse.redacted(url)}")
    end = args.end
    _progress(f"generating synthetic sources: {args.months} months up to {end}")
    cmd_generate(argparse.Namespace(end=end, months=args.months, vendors=args.vendors, hospitals=args.hospitals,
                                    seed=args.seed, fresh=True))
    nights = [end - timedelta(days=offset) for offset in range(args.nights - 1, -1, -1)]
    if getattr(args, "his", "sql") == "fhir":  # the HIS over FHIR: its R4 Bulk export, read by the FHIR reader
        from hospital_ops.extract.sql import night_cutoff
        from hospital_ops_sim.his import write_fhir_bulk

        export = write_fhir_bulk(warehouse.url(HIS_SIM_DATABASE), settings().var_dir / "fhir_exports" / "demo",
                                 until=night_cutoff(end))
        _progress(f"HIS as an HL7 FHIR R4 Bulk export in {export.out_dir}: {export.counts}")
        os.environ.update(HIS_KIND="fhir", HIS_FHIR_DIR=str(export.out_dir))
    _progress(f"running {len(nights)} nights: the first catches up on history, the others are incremental")
    ok = _run_nights(nights, scheduler=getattr(args, "scheduler", False))
    if ok:
        ok = _publish_dbt_docs(url, nights[-1])
    _progress(f"demo {'finished' if ok else 'FAILED'} in {time.monotonic() - started:.0f} s")
    _progress("explore the marts: psql \"$(hospital-ops warehouse url --role bi_reader)\"  (marts, scoring); "
              "as the writer: hospital-ops warehouse url")
    if ok:
        _progress("see the dashboards 看板: `make bi` or `hospital-ops bi` (installs Apache Superset on first use, "
                  "about 5 min; then serves on http://127.0.0.1:8088)")
    return 0 if ok else 1


def cmd_bench(args: argparse.Namespace) -> int:
    from hospital_ops_sim import bench

    return bench.run(args)


def cmd_run_night(args: argparse.Namespace) -> int:
    """The product's `run-night`, with the simulated HIS and the survey platform's simulator attached."""
    from hospital_ops.cli import main as product_main
    from hospital_ops_sim.survey_api import simulated_survey_api

    warehouse.start()
    _use_simulated_his()
    with simulated_survey_api(settings().survey_simulator_file, progress=_progress):
        return product_main(["run-night", *args.product_args])


def cmd_airflow(args: argparse.Namespace) -> int:
    """The product's `airflow …`, with the simulated HIS (when generated) as the deployment's HIS."""
    from hospital_ops.cli import main as product_main

    warehouse.start()
    _use_simulated_his()
    return product_main(["airflow", *args.product_args])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hospital-ops-sim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    default_end = date.today() - timedelta(days=1)

    def generation_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--end", type=_date, default=default_end, help="last business date (default: yesterday)")
        p.add_argument("--months", type=int, default=6, help="months of history (default 6)")
        p.add_argument("--vendors", type=int, default=14)
        p.add_argument("--hospitals", type=int, default=3)
        p.add_argument("--seed", type=int, default=20261123)

    gen = sub.add_parser("generate", help="write synthetic source files into the inbox")
    generation_options(gen)
    gen.add_argument("--fresh", action="store_true", help="empty the inbox first")
    gen.set_defaults(func=cmd_generate)

    from hospital_ops_sim import bench

    bench_parser = sub.add_parser("bench", help="benchmark: loader against raw COPY, a night's cost against history "
                                                "size, orchestration overhead, memory; prints a table, writes JSON "
                                                "to var/bench/")
    bench.add_arguments(bench_parser)
    bench_parser.set_defaults(func=cmd_bench)

    demo = sub.add_parser("demo", help="generate sources and run the last few nights end to end")
    generation_options(demo)
    demo.add_argument("--nights", type=int, default=3, help="nights to run (default 3)")
    demo.add_argument("--his", choices=["sql", "fhir"], default=os.environ.get("HIS_KIND", "sql"),
                      help="the HIS interface: its database (sql, default) or its HL7 FHIR R4 Bulk export (fhir)")
    demo.add_argument("--scheduler", action="store_true",
                      help="run the nights through the local Airflow deployment (`hospital-ops airflow up`) "
                           "so they show in its UI, instead of `airflow dags test`")
    demo.set_defaults(func=cmd_demo)

    night = sub.add_parser("run-night", help="hospital-ops run-night, with the simulated HIS and survey platform")
    night.add_argument("product_args", nargs=argparse.REMAINDER, help="DATE [--force-publish]")
    night.set_defaults(func=cmd_run_night)

    af = sub.add_parser("airflow", help="hospital-ops airflow, with the simulated HIS as the deployment's HIS")
    af.add_argument("product_args", nargs=argparse.REMAINDER, help="up|down|status|backfill …")
    af.set_defaults(func=cmd_airflow)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
