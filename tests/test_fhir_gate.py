"""The HIS's FHIR detail (`raw.his_fhir__*`) is a landed source like the others: the loader quarantines a
resource that breaks its spec (with the reason), the quality gate validates each night's batch and holds a
rejected one until it is accepted or superseded, and a condition's onset may predate the history (the
register's date bounds), as a procedure's date may not. Real PostgreSQL, real GX; the suites and the
checkpoint's validations of these tables are the ones in expectations/."""

from __future__ import annotations

import json
import shutil
from contextlib import closing
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg2

from hospital_ops import batches
from hospital_ops.config import date_bounds
from hospital_ops.extract.fhir_r4 import fhir_export_to_landing
from hospital_ops.load.loader import load_night, plan_extract
from hospital_ops.quality.gate import load_checkpoint, run_quality_gate
from hospital_ops.sources.his import SOURCE as HIS
from hospital_ops.sources.his_fhir import SOURCE as HIS_FHIR

KEY = b"fhir-gate-key"
TZ = ZoneInfo("Asia/Shanghai")
NIGHT1 = date(2026, 11, 1)
NIGHT2, NIGHT3 = NIGHT1 + timedelta(days=1), NIGHT1 + timedelta(days=2)
EXPECTATIONS = Path(__file__).resolve().parents[1] / "expectations"
AMOUNT_MAX = next(c.max for c in HIS_FHIR.entity("amounts").columns if c.name == "amount")
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def _stamp(day: date) -> str:
    return f"{day.isoformat()}T10:00:00+08:00"


def _export(folder: Path, night: date) -> None:
    """One visit of one patient, and that night's planted resources."""
    meta = {"lastUpdated": _stamp(night)}
    visit = f"V{night.day}"
    resources = [
        {"resourceType": "Patient", "id": "p1", "meta": meta, "gender": "male"},
        {"resourceType": "Encounter", "id": visit, "meta": meta, "status": "finished",
         "class": {"system": ACT, "code": "AMB"}, "subject": {"reference": "Patient/p1"},
         "period": {"start": _stamp(night)}},
        {"resourceType": "Procedure", "id": f"PR{night.day}", "meta": meta, "status": "completed",
         "subject": {"reference": "Patient/p1"}, "encounter": {"reference": f"Encounter/{visit}"},
         "code": {"coding": [{"system": "http://snomed.info/sct", "code": "80146002"}]},
         "performedDateTime": _stamp(night)},
    ]
    if night == NIGHT1:
        history_start = date_bounds().history_start
        before = (history_start - timedelta(days=3650)).isoformat()
        resources += [
            # a childhood condition: its onset predates the history, which a register date may
            {"resourceType": "Condition", "id": "C-old", "meta": meta, "subject": {"reference": "Patient/p1"},
             "encounter": {"reference": f"Encounter/{visit}"}, "onsetDateTime": before,
             "code": {"coding": [{"system": "http://snomed.info/sct", "code": "195662009"}]}},
            # a procedure dated before the history is an event outside it: quarantined
            {"resourceType": "Procedure", "id": "PR-old", "meta": meta, "status": "completed",
             "subject": {"reference": "Patient/p1"}, "performedDateTime": before,
             "code": {"coding": [{"system": "http://snomed.info/sct", "code": "80146002"}]}},
            {"resourceType": "ChargeItem", "id": "CH-ok", "meta": meta, "context": {"reference": f"Encounter/{visit}"},
             "priceOverride": {"value": 88.5, "currency": "CNY"}, "occurrenceDateTime": _stamp(night)},
            {"resourceType": "ChargeItem", "id": "CH-huge", "meta": meta,
             "context": {"reference": f"Encounter/{visit}"}, "occurrenceDateTime": _stamp(night),
             "priceOverride": {"value": str(Decimal(str(AMOUNT_MAX)) * 10), "currency": "CNY"}},
        ]
    if night == NIGHT2:  # two versions of one Procedure in one export: the gate's per-file key check fails
        second = dict(resources[2], meta={"lastUpdated": f"{night.isoformat()}T11:00:00+08:00"}, status="stopped")
        resources.append(second)
    folder.mkdir(parents=True)
    (folder / "export.ndjson").write_text("".join(json.dumps(r) + "\n" for r in resources), encoding="utf-8")


def _night(url: str, tmp_path: Path, night: date, expectations: Path) -> bool:
    export = tmp_path / "export" / night.isoformat()
    _export(export, night)
    fhir_export_to_landing(export, tmp_path / "landing", night, key=KEY, tz=TZ)
    with closing(psycopg2.connect(url)) as conn:
        for source in (HIS, HIS_FHIR):
            load_night(conn, source, plan_extract(tmp_path / "landing", source, night, night - timedelta(days=1)),
                       run_id=f"run-{night}",
                       batch_date=night, key=KEY)
    return run_quality_gate(url, run_id=f"run-{night}", business_date=night, checkpoint="fhir_detail",
                            data_docs_dir=tmp_path / "docs", raise_on_failure=False,
                            expectations_dir=expectations).success


def _expectations(tmp_path: Path) -> Path:
    """The nightly checkpoint's validations of raw.his_fhir__* with their suites, as they are in expectations/."""
    folder = tmp_path / "expectations"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "suites").mkdir()
    nightly = json.loads((EXPECTATIONS / "checkpoints" / "nightly_sources.json").read_text(encoding="utf-8"))
    mine = [v for v in nightly["validations"] if v["table"].startswith("raw.his_fhir__")]
    assert {v["table"] for v in mine} == {f"raw.{e.raw_table}" for e in HIS_FHIR.entities}
    for validation in mine:
        shutil.copy(EXPECTATIONS / "suites" / f"{validation['suite']}.json", folder / "suites")
    checkpoint = {k: v for k, v in nightly.items() if k != "validations"} | {"name": "fhir_detail", "validations": mine}
    (folder / "checkpoints" / "fhir_detail.json").write_text(json.dumps(checkpoint), encoding="utf-8")
    assert len(load_checkpoint("fhir_detail", folder).validations) == len(HIS_FHIR.entities)
    return folder


def test_fhir_detail_is_quarantined_gated_and_held_like_any_source(db_url: str, tmp_path: Path) -> None:
    expectations = _expectations(tmp_path)
    assert _night(db_url, tmp_path, NIGHT1, expectations)  # quarantined rows do not fail the batch rules
    with closing(psycopg2.connect(db_url)) as conn, conn.cursor() as cur:
        cur.execute("select record->>'amount_id', reason from raw._quarantine where source = 'his_fhir' and entity = 'amounts'")
        quarantined = dict(cur.fetchall())
        cur.execute("select amount_id from raw.his_fhir__amounts")
        assert [r[0] for r in cur.fetchall()] == ["ChargeItem/CH-ok/charge_item/CNY"]
        cur.execute("select condition_id, onset_at::date from raw.his_fhir__conditions")
        conditions = dict(cur.fetchall())
        cur.execute("select procedure_id from raw.his_fhir__procedures order by 1")
        procedures = [r[0] for r in cur.fetchall()]
        cur.execute("select reason from raw._quarantine where source = 'his_fhir' and entity = 'procedures'")
        procedure_reasons = [r[0] for r in cur.fetchall()]
    assert list(quarantined) == ["ChargeItem/CH-huge/charge_item/CNY"]
    assert "amount" in quarantined["ChargeItem/CH-huge/charge_item/CNY"]
    assert conditions == {"C-old": date_bounds().history_start - timedelta(days=3650)}  # register bounds
    assert procedures == [f"PR{NIGHT1.day}"] and len(procedure_reasons) == 1 and "performed_at" in procedure_reasons[0]

    assert not _night(db_url, tmp_path, NIGHT2, expectations)
    with closing(psycopg2.connect(db_url)) as conn, conn.cursor() as cur:
        held = batches.held_batches(cur)
        cur.execute("select entity, verdict from raw._batch_verdicts where batch_date = %s", (NIGHT2,))
        verdicts = dict(cur.fetchall())
    assert [(h["source"], h["entity"], h["batch_date"]) for h in held] == [("his_fhir", "procedures", NIGHT2.isoformat())]
    assert "expect_compound_columns_to_be_unique" in held[0]["reasons"]
    assert verdicts == {"encounters": "passed", "procedures": "rejected", "conditions": "passed", "amounts": "passed"}

    assert _night(db_url, tmp_path, NIGHT3, expectations)  # a later good night goes through; night 2 stays held
    with closing(psycopg2.connect(db_url)) as conn:
        with conn.cursor() as cur:
            assert [h["batch_date"] for h in batches.held_batches(cur)] == [NIGHT2.isoformat()]
        assert batches.accept(conn, "his_fhir", NIGHT2, by="王主任", note="the HIS resent the stopped version") == \
            ["procedures"]
        with conn.cursor() as cur:
            assert batches.held_batches(cur) == []
