"""A batch that only a dbt test rejects is traced to its batch and held, as a gate rejection is: the marts
build is run again without it and the night goes on; the next night does not fail on it again; a rerun of
its night with a corrected delivery releases it. A failing test that cannot be traced to a batch not yet
published (a rule over several models, a model without lineage, rows already published) stops the night.

The planted case is the one that used to fail every following night: a vendor-registry batch the gate
rejects (a vendor twice in one file), and a contracts batch of the same night that the loader took
(its vendor was in raw) but that dbt's relationships test rejects once the registry batch is held."""

from __future__ import annotations

import csv
import json
import shutil
from contextlib import closing
from datetime import date, timedelta
from pathlib import Path

import psycopg2
import pytest

from hospital_ops import batches, dbt_runner
from hospital_ops.config import settings
from hospital_ops.load.loader import ManifestEntry, ensure_raw_schema, load_night
from hospital_ops.pipeline import format_summary, night_summary
from hospital_ops.quality.gate import run_quality_gate
from hospital_ops.sources import LANDED_SOURCES
from hospital_ops.sources.vendor import SOURCE

KEY = b"dbt-test-verdict-key"
N1 = date(2026, 11, 1)
N2, N3, N4 = N1 + timedelta(days=1), N1 + timedelta(days=2), N1 + timedelta(days=3)


def _vendor(vendor_id: str, name: str) -> list[str]:
    return [vendor_id, name, "logistics_delivery", "medium", "91310000MA1FL0XX1A", "张伟", "13800138000",
            "2024-03-01", "N"]


def _contract(contract_id: str, vendor_id: str) -> list[str]:
    return [contract_id, vendor_id, "H01", "logistics_delivery", "2025-01-01", "2027-12-31", "", "", "0.95", "120000"]


DELIVERIES: dict[date, dict[str, list[list[str]]]] = {
    N1: {"registry": [_vendor("V001", "顺达医药物流有限公司")], "contracts": [_contract("C1", "V001")]},
    # V002 twice with different names: the loader takes both rows, the gate rejects the registry batch;
    # C2 names V002, which is in raw, so the loader and the gate take the contracts batch
    N2: {"registry": [_vendor("V002", "安康检验"), _vendor("V002", "安康医学检验")], "contracts": [_contract("C2", "V002")]},
    N3: {"contracts": [_contract("C3", "V001")]},
    N4: {"contracts": [_contract("C4", "V001")]},
}
# the marts stage narrowed to the two staging models and their tests (the same dbt build, flags and tracing)
NARROW = ["build", "--select", "stg_vendor__registry", "stg_vendor__contracts", "--indirect-selection", "cautious",
          "--exclude-resource-type", "unit_test"]


def _load(url: str, tmp_path: Path, night: date, deliveries: dict[str, list[list[str]]]) -> None:
    folder = tmp_path / "vendor" / night.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for entity, rows in deliveries.items():
        name = "vendor_registry.csv" if entity == "registry" else f"{entity}.csv"
        with (folder / name).open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([c.name for c in SOURCE.entity(entity).columns])
            writer.writerows(rows)
        entries.append(ManifestEntry(entity, folder / name, f"vendor/{night}/{name}", night))
    with closing(psycopg2.connect(url)) as conn:
        load_night(conn, SOURCE, entries, run_id=f"run-{night}", batch_date=night, key=KEY)


def _gate(url: str, tmp_path: Path, night: date) -> None:
    """The real gate, its checkpoint narrowed to the two raw tables (their real suites)."""
    expectations = tmp_path / "expectations"
    if not expectations.is_dir():
        shutil.copytree(settings().expectations_dir, expectations)
        checkpoint = expectations / "checkpoints" / "nightly_sources.json"
        spec = json.loads(checkpoint.read_text())
        spec["validations"] = [v for v in spec["validations"]
                               if v["table"] in ("raw.vendor__registry", "raw.vendor__contracts")]
        assert len(spec["validations"]) == 2
        checkpoint.write_text(json.dumps(spec))
    run_quality_gate(url, run_id=f"run-{night}", business_date=night, data_docs_dir=tmp_path / "docs",
                     raise_on_failure=False, expectations_dir=expectations)


def _marts(url: str, night: date) -> None:
    dbt_runner.run_stage("marts", warehouse_url=url, business_date=night)


def _q(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _contracts(url: str) -> set[str]:
    return {row[0] for row in _q(url, "select contract_id from staging.stg_vendor__contracts")}


def _ids(*nights: date) -> set[str]:
    return {row[0] for night in nights for row in DELIVERIES[night].get("contracts", [])}


@pytest.fixture
def narrow_marts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(dbt_runner.STAGES, "marts", NARROW)


def test_a_batch_only_a_dbt_test_rejects_is_held_and_the_night_goes_on(db_url: str, tmp_path: Path,
                                                                        narrow_marts: None) -> None:
    _load(db_url, tmp_path, N1, DELIVERIES[N1])
    _marts(db_url, N1)  # does not fire: a clean build holds nothing
    assert _held(db_url) == []
    _load(db_url, tmp_path, N2, DELIVERIES[N2])
    _marts(db_url, N2)  # the registry batch is not held yet: C2 finds V002
    _gate(db_url, tmp_path, N2)
    assert [(h["entity"], h["batch_date"]) for h in _held(db_url)] == [("registry", N2.isoformat())]

    # night 3: C2's vendor is held now, so dbt's relationships test fails on C2's row, from batch N2.
    # Once the batch is published (a later night published), the failure is not tonight's: the night stops
    _load(db_url, tmp_path, N3, DELIVERIES[N3])
    with closing(psycopg2.connect(db_url)) as conn, conn.cursor() as cur:
        cur.execute("create schema if not exists audit")
        cur.execute("create table if not exists audit.publications (run_id text not null, business_date date not null, "
                    "relation text not null, row_count bigint not null, published_at timestamptz not null default now())")
        cur.execute("insert into audit.publications values ('run-x', %s, 'marts.x', 0)", (N3,))
        conn.commit()
    with pytest.raises(dbt_runner.DbtStageFailed) as stopped:
        _marts(db_url, N3)
    message = str(stopped.value)
    assert "relationships_stg_vendor__contracts_vendor_id" in message and "already published" in message
    assert [(h["entity"], h["batch_date"]) for h in _held(db_url)] == [("registry", N2.isoformat())]

    _q_exec(db_url, "delete from audit.publications")  # only N1 … nothing published: N2 is not yet published
    _q_exec(db_url, "insert into audit.publications values ('run-1', %s, 'marts.x', 0)", (N1,))
    _marts(db_url, N3)  # fires: holds contracts N2, builds again without it, and succeeds
    held = _held(db_url)
    assert [(h["entity"], h["batch_date"]) for h in held] == [("contracts", N2.isoformat()), ("registry", N2.isoformat())]
    assert held[0]["reasons"].startswith("dbt test relationships_stg_vendor__contracts_vendor_id")
    assert _q(db_url, "select verdict, decided_by from raw._batch_verdicts where entity = 'contracts' "
                      "and batch_date = %s order by decided_at", (N2,)) == [("passed", "quality gate"),
                                                                           ("rejected", batches.DBT_TEST)]
    assert _contracts(db_url) == _ids(N1, N3)
    # the failing rows dbt kept are where tracing read them: a view only the writer's schemas hold
    assert _q(db_url, "select count(*) from information_schema.views where table_schema = 'dbt_test_failures' "
                      "and table_name like 'relationships_stg_vendor_%%'") == [(1,)]

    _gate(db_url, tmp_path, N3)  # the gate passes tonight's batch and leaves last night's held one held
    assert _q(db_url, "select verdict from raw._batch_verdicts where decided_by = 'quality gate' "
                      "and entity = 'contracts' and batch_date = %s", (N3,)) == [("passed",)]
    summary = format_summary(night_summary(warehouse_url=db_url, business_date=N3))
    assert f"vendor.contracts batch {N2}: dbt test relationships_stg_vendor__contracts_vendor_id" in summary

    verdicts = _q(db_url, "select count(*) from raw._batch_verdicts")
    _load(db_url, tmp_path, N4, DELIVERIES[N4])
    _marts(db_url, N4)  # the next night does not fail on it again, and records nothing new
    assert _q(db_url, "select count(*) from raw._batch_verdicts") == verdicts
    assert _contracts(db_url) == _ids(N1, N3, N4)

    # the vendor corrects the contract and night 2 is delivered again: the batch is tested again and passes
    corrected = {"registry": [_vendor("V002", "安康医学检验")], "contracts": [_contract("C2", "V001")]}
    _load(db_url, tmp_path, N2, corrected)
    _marts(db_url, N4)
    assert _q(db_url, "select verdict from raw._batch_verdicts where entity = 'contracts' and batch_date = %s "
                      "order by decided_at", (N2,)) == [("passed",), ("rejected",), ("superseded",)]
    assert _contracts(db_url) == _ids(N1, N2, N3, N4)


def _held(url: str) -> list[dict]:
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        return batches.held_batches(cur)


def _q_exec(url: str, sql: str, params: tuple = ()) -> None:
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        conn.commit()


def test_failures_without_a_batch_are_not_traced(db_url: str) -> None:
    """A singular test (a rule over several models) and a test on a model without source_file are not
    traced: nothing is held and the night stops."""
    _q_exec(db_url, "create table public.fct_no_lineage (department_id text, revenue numeric)")
    _q_exec(db_url, "create table public.failing_rows as select 'D01'::text as department_id, -1::numeric as revenue")
    tests = [batches.FailedTest("assert_ledger_reconciles_to_source", None, "public.failing_rows", None),
             batches.FailedTest("expression_is_true_fct_no_lineage", "public.fct_no_lineage", "public.failing_rows",
                                None)]
    with closing(psycopg2.connect(db_url)) as conn:
        held, untraced = batches.hold_failed_tests(conn, tests, run_id="run-x")
    assert held == []
    assert untraced == [("assert_ledger_reconciles_to_source: a rule over several models (a singular test), not about "
                         "rows of one file"),
                        ("expression_is_true_fct_no_lineage: its model public.fct_no_lineage carries no source_file "
                         "(a mart-level rule)")]
    assert _held(db_url) == []


# ----------------------------------------------------- a test on a FHIR detail model holds its batch

# the FHIR detail tables keep their landing file (source_file) like every staging model: a test on them
# traces to its batch. Planted: a FHIR night whose encounter names a department the HIS delivered never
# (the relationships test on stg_his_fhir__encounters.department_id fails on it); the night before is clean.
FHIR_NARROW = ["build", "--select", "stg_his__hospitals", "stg_his__departments", "stg_his_fhir__encounters",
               "--indirect-selection", "cautious", "--exclude-resource-type", "unit_test"]
UPDATED = "2026-10-31 08:00:00"


def _encounter(encounter_id: str, department_id: str) -> list[str]:
    return [encounter_id, "", "http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB", "outpatient", "finished",
            "H01", department_id, "true", "2026-10-30 09:00:00", "2026-10-30 09:30:00", "", UPDATED]


FHIR_DELIVERIES: dict[date, dict[tuple[str, str], list[list[str]]]] = {
    N1: {("his", "hospitals"): [["H01", "第一医院", "本部", "tertiary", "lead", UPDATED]],
         ("his", "departments"): [["D01", "H01", "心内科", "clinical", UPDATED]],
         ("his_fhir", "encounters"): [_encounter("E1", "D01")]},
    N2: {("his_fhir", "encounters"): [_encounter("E2", "D99"), _encounter("E3", "D01")]},
}


def _load_sources(url: str, tmp_path: Path, night: date, deliveries: dict[tuple[str, str], list[list[str]]]) -> None:
    by_source: dict[str, list[ManifestEntry]] = {}
    for (source_name, entity), rows in deliveries.items():
        spec = LANDED_SOURCES[source_name].entity(entity)
        name = spec.file_pattern.replace("*", "n")
        folder = tmp_path / source_name / night.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / name).open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([c.name for c in spec.columns])
            writer.writerows(rows)
        by_source.setdefault(source_name, []).append(
            ManifestEntry(entity, folder / name, f"{source_name}/{night}/{name}", night))
    with closing(psycopg2.connect(url)) as conn:
        for source_name, entries in by_source.items():
            load_night(conn, LANDED_SOURCES[source_name], entries, run_id=f"run-{night}", batch_date=night, key=KEY)


def test_a_failing_test_on_a_fhir_detail_model_holds_its_batch(db_url: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(dbt_runner.STAGES, "marts", FHIR_NARROW)
    _load_sources(db_url, tmp_path, N1, FHIR_DELIVERIES[N1])
    _marts(db_url, N1)  # does not fire: every encounter's department is the HIS's
    assert _held(db_url) == []
    lineage = _q(db_url, "select encounter_id, source_file, landed_batch_date from staging.stg_his_fhir__encounters")
    assert lineage == [("E1", f"his_fhir/{N1}/his_fhir_encounters.csv", N1)]

    _load_sources(db_url, tmp_path, N2, FHIR_DELIVERIES[N2])
    _marts(db_url, N2)  # fires: the FHIR batch is held, the build runs again without it, and the night goes on
    held = _held(db_url)
    assert [(h["source"], h["entity"], h["batch_date"]) for h in held] == [("his_fhir", "encounters", N2.isoformat())]
    assert held[0]["reasons"].startswith("dbt test relationships_stg_his_fhir__encounters_department_id")
    delivered = {row[0] for night in (N1, N2) for row in FHIR_DELIVERIES[night].get(("his_fhir", "encounters"), [])}
    unheld = {row[0] for row in FHIR_DELIVERIES[N1][("his_fhir", "encounters")]}
    shown = {row[0] for row in _q(db_url, "select encounter_id from staging.stg_his_fhir__encounters")}
    assert shown == unheld and shown < delivered


# --------------------------------------------- a test on int_referral__visit_matches holds the referral batch

# int_referral__visit_matches joins each referral to the HIS encounters that followed it; its rows keep
# the referral row's lineage. No test on it fails on a delivery the loader took today (its key and channel
# are the referral's, tested there), so its failing rows are planted as dbt's `unique` keeps them.
REFERRAL_NARROW = ["build", "--select", "stg_referral__channels", "stg_referral__referrals", "stg_his__outpatient_visits",
                   "stg_his__inpatient_stays", "stg_referral__his_patient_keys", "int_referral__visit_matches",
                   "--indirect-selection", "cautious",
                   "--exclude-resource-type", "unit_test"]


def _referral(referral_id: str) -> list[str]:
    return [referral_id, "C1", "2026-10-30 10:00:00", "H01", "", "110101199001011234", "", "", "15"]


REFERRAL_DELIVERIES: dict[date, dict[tuple[str, str], list[list[str]]]] = {
    N1: {("referral", "channels"): [["C1", "社区卫生服务站一", "community_health_station", "A", "2024-01-01", "H01", "", ""]],
         ("referral", "referrals"): [_referral("R1")]},
    N2: {("referral", "referrals"): [_referral("R2")]},
}


def test_a_failing_test_on_referral_visits_holds_the_referral_batch(db_url: str, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(dbt_runner.STAGES, "marts", REFERRAL_NARROW)
    with closing(psycopg2.connect(db_url)) as conn:
        ensure_raw_schema(conn, LANDED_SOURCES["his"])  # the HIS side of the join, empty
    for night in (N1, N2):
        _load_sources(db_url, tmp_path, night, REFERRAL_DELIVERIES[night])
    _marts(db_url, N2)  # does not fire: its tests pass
    assert _held(db_url) == []
    lineage = {r: (f, d) for r, f, d in _q(
        db_url, "select referral_id, source_file, landed_batch_date from intermediate.int_referral__visit_matches")}
    files = {n: f"referral/{n}/{LANDED_SOURCES['referral'].entity('referrals').file_pattern.replace('*', 'n')}"
             for n in (N1, N2)}
    assert lineage == {"R1": (files[N1], N1), "R2": (files[N2], N2)}

    _q_exec(db_url, "create view public.failing_rows as select 'R2'::text as unique_field, 2 as n_records")
    test = batches.FailedTest("unique_int_referral__visit_matches_referral_id",
                              "intermediate.int_referral__visit_matches", "public.failing_rows", "referral_id")
    with closing(psycopg2.connect(db_url)) as conn:
        held, untraced = batches.hold_failed_tests(conn, [test], run_id="run-x", business_date=N2)
    assert (held, untraced) == ([("referral", "referrals", N2)], [])
    _marts(db_url, N2)  # the held referral batch is out of the join
    shown = {row[0] for row in _q(db_url, "select referral_id from intermediate.int_referral__visit_matches")}
    assert shown == {row[0] for row in REFERRAL_DELIVERIES[N1][("referral", "referrals")]}
