"""The quality gate fails a source whose quarantined share of the night exceeds its seeded threshold,
naming the top reasons; a night within the threshold passes. Real loads of real FHIR lines."""

from __future__ import annotations

import json
from contextlib import closing
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg2
import pytest

from hospital_ops.extract.fhir_r4 import fhir_export_to_landing
from hospital_ops.load.loader import ensure_raw_schema, load_night, plan_extract
from hospital_ops.quality.gate import QualityGateFailed, check_quarantine_share, quarantine_thresholds
from hospital_ops.sources.his import SOURCE as HIS
from hospital_ops.sources.his_fhir import SOURCE as HIS_FHIR

NIGHT = date(2026, 11, 29)
KEY = b"gate-test"


def land(url: str, export: Path, landing: Path) -> None:
    fhir_export_to_landing(export, landing, NIGHT, key=KEY, tz=ZoneInfo("Asia/Shanghai"))
    with closing(psycopg2.connect(url)) as conn:
        for source in (HIS, HIS_FHIR):
            ensure_raw_schema(conn, source)
            manifest = plan_extract(landing, source, NIGHT, None)
            load_night(conn, source, manifest, run_id="gate-1", batch_date=NIGHT, key=KEY)


def encounters(n: int) -> list[str]:
    return [json.dumps({"resourceType": "Encounter", "id": f"E{i}", "class": {"code": "AMB"},
                        "subject": {"reference": "Patient/p"}, "period": {"start": "2026-11-28T09:00:00+08:00"}})
            for i in range(n)]


def test_the_threshold_comes_from_the_seed() -> None:
    thresholds = quarantine_thresholds()
    assert ("*", "*") in thresholds and 0 < thresholds[("*", "*")] <= 1


def test_a_night_mostly_quarantined_fails_naming_the_reasons(fresh_database, tmp_path) -> None:
    url = fresh_database("qgate")
    export = tmp_path / "export"
    export.mkdir()
    limit = quarantine_thresholds()[("his_fhir", "*")]
    good = 2
    bad = int(good * limit / (1 - limit)) + 3  # just over the share the seed allows
    (export / "Encounter.ndjson").write_text("\n".join(encounters(good) + ["{broken"] * bad) + "\n")
    land(url, export, tmp_path / "landing")
    with pytest.raises(QualityGateFailed) as failed:
        check_quarantine_share(url, run_id="r1", business_date=NIGHT)
    message = str(failed.value)
    assert "raw.his_fhir__*" in message and "quarantined_share_at_most" in message
    assert f"{bad}× encounters: encounter_id: required value is missing" in message  # the top reason, counted
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute("select count(*) filter (where not success) from dq.validation_results "
                    "where checkpoint = 'quarantine_share' and run_id = 'r1'")
        assert cur.fetchone()[0] >= 1


def test_a_night_within_the_threshold_passes(fresh_database, tmp_path) -> None:
    url = fresh_database("qgate")
    export = tmp_path / "export"
    export.mkdir()
    (export / "Encounter.ndjson").write_text("\n".join([*encounters(10), "{broken"]) + "\n")
    land(url, export, tmp_path / "landing")
    result = check_quarantine_share(url, run_id="r2", business_date=NIGHT)
    assert result.success and any(r["unexpected_count"] == 1 for r in result.results)


def test_a_fresh_warehouse_without_loads_passes(fresh_database) -> None:
    assert check_quarantine_share(fresh_database("qgate"), run_id="r3", business_date=NIGHT).success
