"""`hospital-ops`: the command line of the platform.

    hospital-ops warehouse start|stop|status|url|roles|migrate [--sql]
    hospital-ops run-night DATE          run the nightly DAG for one business date (airflow dags test)
    hospital-ops summary DATE            print what a night loaded, quarantined, gated and published
    hospital-ops warnings list|acknowledge|resolve   a supervisor's actions on vendor warnings
    hospital-ops batches list|accept SOURCE DATE     batches the quality gate held out of publication
    hospital-ops audit verify            recompute the run ledger's hash chain, name the first altered row
    hospital-ops scores appeal DEPT MONTH --score S --reason … --requested-by … --decided-by …
    hospital-ops alerts report           each anomaly rule's alert rate and catch rate of planted anomalies
    hospital-ops metabase setup          provision Metabase: admin, warehouse as bi_reader, dbt descriptions, dashboards
    hospital-ops docs [--date DATE]      generate the dbt documentation site into <var>/dbt_docs/
    hospital-ops airflow up|down|status [--manual-only]; airflow backfill --from DATE --to DATE [--dry-run]
                                         the local Airflow deployment: API server + UI, scheduler, DAG
                                         processor, triggerer; metadata on the embedded PostgreSQL

The simulated sources, `demo`, `generate` and `bench` are the separate, development-only command
`hospital-ops-sim` (package `hospital_ops_sim`); this package never imports it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import date, timedelta
from typing import TYPE_CHECKING

from hospital_ops import warehouse
from hospital_ops.config import settings

if TYPE_CHECKING:
    from hospital_ops import airflow_local


def _progress(message: str) -> None:
    print(f"[hospital-ops {time.strftime('%H:%M:%S')}] {message}", flush=True)


def cmd_warehouse(args: argparse.Namespace) -> int:
    if args.action == "start":
        print(warehouse.start())
    elif args.action == "stop":
        warehouse.stop()
        print("stopped")
    elif args.action == "status":
        print(json.dumps(warehouse.status(), indent=2))
    elif args.action == "roles":
        import psycopg2

        from hospital_ops import limits, security

        conn = psycopg2.connect(warehouse.admin_url(warehouse.DATABASE))
        conn.autocommit = True
        with conn.cursor() as cur:
            security.ensure_roles(cur)
            security.harden_roles(cur)
            limits.apply_role_limits(cur, security.WRITER)
        conn.close()
        warehouse.migrate_database(warehouse.DATABASE)
        print(f"roles ready: {security.WRITER}, {security.BI_READER}, {security.AUDITOR}, and the run ledger owned by "
              f"{security.LEDGER_OWNER} (set the login roles' passwords as DBA)")
    elif args.action == "migrate":
        from hospital_ops import migrate

        if args.sql:  # offline: the SQL from an empty warehouse to this release, for a DBA to review and apply
            print(migrate.upgrade_sql())
        else:
            print(f"warehouse at revision {warehouse.migrate_database(warehouse.DATABASE)}")
    else:
        # the role's URL with its password: for a person at a terminal (psql, a BI tool), never a log
        from hospital_ops import security

        role = {"writer": security.WRITER}.get(args.role or "writer", args.role)
        print(warehouse.role_url(role))
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    from hospital_ops.alert_report import alert_rates, format_report, planted_truth

    url = warehouse.start()
    planted = planted_truth(settings().var_dir, settings().inbox_dir, settings().survey_simulator_file)
    print(format_report(alert_rates(url, planted)))
    return 0


def _print_airflow_login(deployment: airflow_local.Deployment) -> None:
    _progress(f"Airflow UI and REST API: {deployment.url}  (login {deployment.username} / {deployment.password}; "
              f"password kept in {settings().var_dir / 'secrets' / 'airflow_passwords.json'})")


def _run_nights_with_sources(nights: list[date], url: str) -> bool:
    from hospital_ops.airflow_local import run_night
    from hospital_ops.pipeline import format_summary, night_summary

    for position, night in enumerate(nights, start=1):
        started = time.monotonic()
        _progress(f"night {night}: running DAG hospital_ops_nightly …")
        run = run_night(night, url)
        reason = run.message or "tasks: " + (", ".join(run.failed_tasks) or "see log")
        verdict = "succeeded" if run.succeeded else f"FAILED ({reason})"
        _progress(f"night {night}: {verdict} in {time.monotonic() - started:.0f} s (log: {run.log_file})")
        last = position == len(nights) or not run.succeeded
        print(format_summary(night_summary(warehouse_url=url, business_date=night),
                             warehouse.redacted(url) if last else None,
                             detailed=last), flush=True)
        if not run.succeeded:
            return False
    return True


def cmd_run_night(args: argparse.Namespace) -> int:
    if getattr(args, "force_publish", False):
        from hospital_ops.config import environment
        from hospital_ops.pipeline import FORCE_PUBLISH_ENV

        with environment({FORCE_PUBLISH_ENV: "1"}):
            return 0 if _run_nights_with_sources([args.date], warehouse.start()) else 1
    return 0 if _run_nights_with_sources([args.date], warehouse.start()) else 1


def cmd_summary(args: argparse.Namespace) -> int:
    from hospital_ops.pipeline import format_summary, night_summary

    url = warehouse.url()
    print(format_summary(night_summary(warehouse_url=url, business_date=args.date), warehouse.redacted(url)))
    return 0


def _publish_dbt_docs(url: str, business_date: date) -> bool:
    from hospital_ops.dbt_runner import DbtStageFailed, generate_docs

    _progress("generating the dbt documentation site (dbt docs generate) …")
    try:
        site = generate_docs(warehouse_url=url, business_date=business_date)
    except DbtStageFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return False
    _progress(f"dbt docs: open {site / 'static_index.html'} in a browser (one self-contained file), "
              f"or serve the folder: python -m http.server 8081 --directory {site}")
    return True


def cmd_docs(args: argparse.Namespace) -> int:
    return 0 if _publish_dbt_docs(warehouse.start(), args.date) else 1


def cmd_warnings(args: argparse.Namespace) -> int:
    from hospital_ops.vendor_warnings import WarningActionError, list_warnings, record_action

    url = warehouse.url()
    if args.action == "list":
        for w in list_warnings(url, include_resolved=args.all):
            subject = "" if w["subject"] == "-" else f" {w['subject']}"
            print(f"{w['warning_id']}  {w['colour']:<6} {w['status']:<12} {w['vendor_id']} {w['rule_id']} "
                  f"{w['period_month']:%Y-%m}{subject} observed {w['observed_value']:g} → {w['required_action']}")
        return 0
    try:
        record_action(url, args.warning_id, args.action, actor=args.by, note=args.note)
    except WarningActionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"recorded: {args.action} {args.warning_id} by {args.by}; the published status changes with the next night")
    return 0


def cmd_batches(args: argparse.Namespace) -> int:
    from contextlib import closing

    import psycopg2

    from hospital_ops.batches import BatchError, accept, held_batches

    with closing(psycopg2.connect(warehouse.url())) as conn:
        if args.action == "list":
            with conn.cursor() as cur:
                held = held_batches(cur)
            for h in held:
                print(f"{h['source']}.{h['entity']} batch {h['batch_date']} held since {h['held_since'][:19]}: "
                      f"{h['reasons']}")
            if not held:
                print("no batch is held")
            return 0
        try:
            released = accept(conn, args.source, args.date, by=args.by, note=args.note)
        except BatchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    print(f"accepted by {args.by}: {args.source} batch {args.date} ({', '.join(released)}); "
          "the next night publishes it")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    import psycopg2

    from hospital_ops import security
    from hospital_ops.audit import verify

    conn = psycopg2.connect(warehouse.role_url(security.AUDITOR))  # read only: the auditor checks the ledger
    try:
        result = verify(conn)
    finally:
        conn.close()
    if result.ok:
        print(f"run ledger intact: {result.rows} rows, head hash {result.head_hash}")
        return 0
    print(f"run ledger TAMPERED: {result.problem}", file=sys.stderr)
    return 1


def cmd_scores(args: argparse.Namespace) -> int:
    from hospital_ops.appeals import AppealError, record_adjustment

    try:
        record_adjustment(warehouse.url(), args.department_id, args.month, args.score, reason=args.reason,
                          requested_by=args.requested_by, decided_by=args.decided_by)
    except AppealError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"recorded: {args.department_id} {args.month:%Y-%m} adjusted to {args.score}; "
          "the published score shows it with the next night")
    return 0


def cmd_metabase(args: argparse.Namespace) -> int:
    from hospital_ops import metabase

    return metabase.run(args)


def cmd_bi(args: argparse.Namespace) -> int:
    from hospital_ops.bi import spec, superset

    if args.action == "exposures":
        path = settings().dbt_project_dir / "models" / "exposures.yml"
        path.write_text(spec.exposures_yaml(spec.load()), encoding="utf-8")
        print(f"wrote {path} from {spec.SPEC_FILE}")
        return 0
    args.no_serve = args.action == "setup"
    return superset.run(args)


def cmd_airflow(args: argparse.Namespace) -> int:
    from hospital_ops import airflow_local

    try:
        return _airflow_action(args)
    except airflow_local.AirflowDeploymentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _airflow_action(args: argparse.Namespace) -> int:
    from hospital_ops import airflow_local

    if args.action == "up":
        url = warehouse.start()
        deployment = airflow_local.up(url, warehouse.admin_url(),
                                      extra_env=airflow_local.MANUAL_ONLY if args.manual_only else None)
        _print_airflow_login(deployment)
        _progress(f"DAG {airflow_local.DAG_ID}: {deployment.url}/dags/{airflow_local.DAG_ID}; "
                  f"logs of the components in {deployment.home / 'logs' / 'components'}")
    elif args.action == "backfill":
        if not (args.from_date and args.to_date):
            print("error: backfill needs --from DATE --to DATE (business dates, both included)", file=sys.stderr)
            return 2
        try:
            result = airflow_local.backfill(args.from_date, args.to_date, dry_run=args.dry_run,
                                            force_publish=args.force_publish)
        except airflow_local.BackfillRefused as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(result.stdout, result.stderr[-2000:] if result.returncode else "", sep="")
        return result.returncode
    elif args.action == "down":
        stopped = airflow_local.down()
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    else:
        status = airflow_local.deployment_status()
        print(json.dumps(status, indent=2, default=str))
        return 0 if status["running"] else 1
    return 0


def _date(text: str) -> date:
    return date.fromisoformat(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hospital-ops", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    wh = sub.add_parser("warehouse", help="manage the embedded PostgreSQL warehouse")
    wh.add_argument("action", choices=["start", "stop", "status", "url", "roles", "migrate"],
                    help="roles: create the writer, bi_reader and auditor roles and the run ledger (needs "
                         "WAREHOUSE_ADMIN_URL on an external server); migrate: bring the warehouse's own tables "
                         "to this release (as the administrator)")
    wh.add_argument("--sql", action="store_true",
                    help="migrate: print the SQL from an empty warehouse instead of applying it")
    wh.add_argument("--role", choices=["writer", "bi_reader", "auditor"],
                    help="url: print this role's URL with its password (default: the writer's)")
    wh.set_defaults(func=cmd_warehouse)

    default_end = date.today() - timedelta(days=1)

    night = sub.add_parser("run-night", help="run the nightly DAG for one business date")
    night.add_argument("date", type=_date)
    night.add_argument("--force-publish", action="store_true",
                       help="publish the night even if a newer one is published (recorded in audit.publications)")
    night.set_defaults(func=cmd_run_night)

    summ = sub.add_parser("summary", help="print a night's summary")
    summ.add_argument("date", type=_date)
    summ.set_defaults(func=cmd_summary)

    warn = sub.add_parser("warnings", help="list vendor warnings, or acknowledge / resolve one")
    warn_sub = warn.add_subparsers(dest="action", required=True)
    listing = warn_sub.add_parser("list", help="open and acknowledged warnings")
    listing.add_argument("--all", action="store_true", help="include resolved warnings")
    for action in ("acknowledge", "resolve"):
        act = warn_sub.add_parser(action, help=f"{action} a warning (recorded with who and why)")
        act.add_argument("warning_id")
        act.add_argument("--by", required=True, help="who takes the action")
        act.add_argument("--note", required=True, help="why (e.g. rectification report received)")
    warn.set_defaults(func=cmd_warnings)

    batch = sub.add_parser("batches", help="batches the quality gate held out of publication")
    batch_sub = batch.add_subparsers(dest="action", required=True)
    batch_sub.add_parser("list", help="the held batches and why")
    accepting = batch_sub.add_parser("accept", help="accept a held batch as it is (recorded with who and why)")
    accepting.add_argument("source")
    accepting.add_argument("date", type=_date)
    accepting.add_argument("--by", required=True, help="who accepts it")
    accepting.add_argument("--note", required=True, help="why (e.g. values confirmed with the vendor)")
    batch.set_defaults(func=cmd_batches)

    audit_parser = sub.add_parser("audit", help="auditors' checks")
    audit_parser.add_argument("action", choices=["verify"], help="recompute the run ledger's hash chain")
    audit_parser.set_defaults(func=cmd_audit)

    scores = sub.add_parser("scores", help="department performance scores")
    score_sub = scores.add_subparsers(dest="action", required=True)
    appeal = score_sub.add_parser("appeal", help="record an upheld appeal 异议 (append-only, with who and why)")
    appeal.add_argument("department_id")
    appeal.add_argument("month", type=_date, help="any day of the month (YYYY-MM-DD)")
    appeal.add_argument("--score", type=float, required=True, help="the adjusted score, 0-100")
    appeal.add_argument("--reason", required=True)
    appeal.add_argument("--requested-by", required=True)
    appeal.add_argument("--decided-by", required=True)
    scores.set_defaults(func=cmd_scores)

    alerts = sub.add_parser("alerts", help="alert precision: each anomaly rule's alert rate and catch rate")
    alerts.add_argument("action", choices=["report"])
    alerts.set_defaults(func=cmd_alerts)

    from hospital_ops import metabase

    mb = sub.add_parser("metabase", help="provision Metabase: admin, the warehouse as bi_reader, "
                                         "dbt column descriptions, starter dashboards (idempotent)")
    mb.add_argument("action", choices=["setup"])
    metabase.add_arguments(mb)
    mb.set_defaults(func=cmd_metabase)

    docs = sub.add_parser("docs", help="generate the dbt documentation site (models, columns, lineage, "
                                       "exposures) into <var>/dbt_docs/")
    docs.add_argument("--date", type=_date, default=default_end,
                      help="business date the models are compiled for (default: yesterday)")
    docs.set_defaults(func=cmd_docs)

    bi = sub.add_parser("bi", help="the dashboards on a local Apache Superset: installs it on first use, provisions "
                                   "the dashboard spec, serves on 127.0.0.1")
    bi.add_argument("action", nargs="?", choices=["serve", "setup", "exposures"], default="serve",
                    help="serve (default): install, provision and serve; setup: everything but serving; "
                         "exposures: regenerate dbt's exposures from the dashboard spec")
    bi.add_argument("--port", type=int, default=8088, help="port on 127.0.0.1 (default 8088)")
    bi.set_defaults(func=cmd_bi)

    af = sub.add_parser("airflow", help="the local Airflow deployment: up, down, status")
    af.add_argument("action", choices=["up", "down", "status", "backfill"])
    af.add_argument("--from", dest="from_date", type=_date, help="backfill: first business date")
    af.add_argument("--to", dest="to_date", type=_date, help="backfill: last business date (included)")
    af.add_argument("--dry-run", action="store_true", help="backfill: list the runs, create none")
    af.add_argument("--force-publish", action="store_true",
                    help="backfill: build and publish nights older than the newest publication too (recorded); "
                         "without it they are loaded only")
    af.add_argument("--manual-only", action="store_true",
                    help="the scheduler runs triggered nights only, never the 02:00 schedule")
    af.set_defaults(func=cmd_airflow)
    return parser


def run(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse `argv` with `parser` and run the chosen subcommand (also the simulators' command line's)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except warehouse.WarehouseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
