"""The HIS over HL7 FHIR R4, on real public data: the 30 Synthea patients of ../shared/reference/.

The Bundles are copied into a drop folder (and, for the Bulk form, re-shaped into NDJSON per resource
type, half of it gzip, references made relative as a Bulk export has them), run through the
pipeline's extract and load for the HIS (the functions the DAG's extract_his/load_his call, with
HIS_KIND=fhir) and dbt, and the figures are checked against a computation in this file from the files
the test wrote — never from the code under test.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from hospital_ops.config import PROJECT_ROOT
from nightly_runs import query

# ../shared/reference from the project root (as in CI); HOSPITAL_OPS_REFERENCE_DIR for a checkout elsewhere
REFERENCE = Path(os.environ.get("HOSPITAL_OPS_REFERENCE_DIR") or PROJECT_ROOT.parent / "shared" / "reference") \
    / "fhir-r4-synthea-bundles"
SEEDS = PROJECT_ROOT / "dbt_project" / "seeds"
NIGHT = date(2026, 11, 29)
TZ = ZoneInfo("Asia/Shanghai")
KEY = "fhir-test-key"

pytestmark = pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"public reference data not found at {REFERENCE}")


# ------------------------------------------------------------------------ the test's own files


def write_bundles(drop: Path) -> list[Path]:
    drop.mkdir(parents=True)
    paths = []
    for source in sorted(REFERENCE.glob("*.json")):
        target = drop / f"bundle_{len(paths):02d}.json"
        shutil.copyfile(source, target)
        paths.append(target)
    return paths


def bulk_resources(bundles: list[Path]) -> dict[str, list[dict]]:
    """The Bundles' resources by type, with references made relative as a Bulk Data export has them."""
    by_type: dict[str, list[dict]] = defaultdict(list)
    for path in bundles:
        bundle = json.loads(path.read_text(encoding="utf-8"))
        urls = {e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]}

        def relative(node, urls=urls):  # type: ignore[no-untyped-def]
            if isinstance(node, dict):
                return {k: (urls.get(v, v) if k == "reference" and isinstance(v, str) else relative(v))
                        for k, v in node.items()}
            if isinstance(node, list):
                return [relative(v) for v in node]
            return node

        for entry in bundle["entry"]:
            by_type[entry["resource"]["resourceType"]].append(relative(entry["resource"]))
    return by_type


def write_ndjson(bundles: list[Path], drop: Path) -> None:
    """The same records as a Bulk Data export: NDJSON per type, relative references, half gzip."""
    drop.mkdir(parents=True)
    by_type = bulk_resources(bundles)
    for position, (rtype, resources) in enumerate(sorted(by_type.items())):
        text = "".join(json.dumps(r) + "\n" for r in resources)
        if position % 2:
            with gzip.open(drop / f"{rtype}.ndjson.gz", "wt", encoding="utf-8") as handle:
                handle.write(text)
        else:
            (drop / f"{rtype}.ndjson").write_text(text, encoding="utf-8")
    (drop / "manifest.json").write_text(json.dumps({
        "transactionTime": "2026-11-29T10:00:00+00:00", "request": "$export", "requiresAccessToken": False,
        "output": [], "error": []}))


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(TZ).replace(tzinfo=None)


def expected_figures(bundles: list[Path]) -> dict:
    """Figures of the README definitions, computed here from the Bundles the test wrote."""
    with (SEEDS / "his_fhir_encounter_classes.csv").open(encoding="utf-8") as handle:
        categories = {row["class_code"]: row["category"] for row in csv.DictReader(handle)}
    with (SEEDS / "his_fhir_surgery_procedures.csv").open(encoding="utf-8") as handle:
        surgery_codes = {(row["code_system"], row["code"]): row["grade"] or "ungraded" for row in csv.DictReader(handle)}
    by_class: Counter = Counter()
    stays: list[tuple[str, datetime, datetime | None]] = []
    encounter_category: dict[str, str] = {}
    procedures, surgeries, surgeries_on_stays = 0, Counter(), Counter()
    resources: list[dict] = []
    for path in bundles:
        resources += [e["resource"] for e in json.loads(path.read_text(encoding="utf-8"))["entry"]]
    for resource in resources:
        if resource["resourceType"] == "Encounter":
            code = resource["class"]["code"]
            category = categories.get(code, "other")
            by_class[(category, code)] += 1
            encounter_category[resource["id"]] = category
            if category == "inpatient":
                period = resource["period"]
                stays.append((resource["subject"]["reference"].split(":")[-1], local(period["start"]),
                              local(period["end"]) if period.get("end") else None))
    for resource in resources:
        if resource["resourceType"] == "Procedure":
            procedures += 1
            coding = resource["code"]["coding"][0]
            grade = surgery_codes.get((coding["system"], coding["code"]))
            if grade is not None:
                surgeries[grade] += 1
                if encounter_category.get(resource["encounter"]["reference"].split(":")[-1]) == "inpatient":
                    surgeries_on_stays[grade] += 1
    discharged = [(p, a, d) for p, a, d in stays if d is not None]
    bed_days = sum(max((d.date() - a.date()).days, 1) for _, a, d in discharged)
    readmitted = 0
    for patient, admitted, discharged_at in discharged:
        later = [a for p, a, _ in stays if p == patient and a > admitted]
        if later and discharged_at is not None and min(later) <= discharged_at + timedelta(days=31):
            readmitted += 1
    return {
        "by_class": dict(by_class), "stays": len(stays), "discharges": len(discharged), "bed_days": bed_days,
        "alos": round(bed_days / len(discharged), 4), "readmissions_31d": readmitted,
        "procedures": procedures, "surgeries": dict(surgeries), "surgeries_on_stays": dict(surgeries_on_stays),
    }


def personal_needles(bundles: list[Path]) -> set[str]:
    """The sample's names, phones, addresses and identifiers, as a search for them would look."""
    needles: set[str] = set()
    for path in bundles:
        for entry in json.loads(path.read_text(encoding="utf-8"))["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] != "Patient":
                continue
            needles.add(resource["id"])
            for name in resource.get("name", []):
                needles.add(" ".join([*name.get("given", []), name.get("family", "")]))
                needles.add(name.get("family", ""))
            needles.update(t["value"] for t in resource.get("telecom", []))
            for address in resource.get("address", []):
                needles.update(address.get("line", []))
            needles.update(i["value"] for i in resource.get("identifier", []))
    return {n for n in needles if len(n) >= 5}


# ------------------------------------------------------------------------------- a night run


def run_fhir_night(export: Path | None, var_dir: Path, url: str, server_url: str | None = None) -> dict:
    from hospital_ops.dbt_runner import run_dbt
    from hospital_ops.pipeline import extract, load

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOSPITAL_OPS_VAR_DIR", str(var_dir))
        patch.setenv("HOSPITAL_OPS_PSEUDONYM_KEY", KEY)
        patch.setenv("WAREHOUSE_URL", url)
        patch.setenv("HIS_KIND", "fhir")
        # a Synthea export is each patient's whole life: the history the hospital loads starts in 1900
        patch.setenv("HOSPITAL_OPS_HISTORY_START_DATE", "1900-01-01")
        if server_url:  # a FHIR server's Bulk Data $export
            patch.setenv("HIS_FHIR_URL", server_url)
            patch.setenv("HIS_FHIR_TOKEN", "bulk-token")
            patch.delenv("HIS_FHIR_DIR", raising=False)
        else:  # a drop folder
            patch.setenv("HIS_FHIR_DIR", str(export))
            patch.delenv("HIS_FHIR_URL", raising=False)
        patch.delenv("HOSPITAL_OPS_TIMEZONE", raising=False)
        extracted = extract("his", warehouse_url=url, business_date=NIGHT)
        loaded = load("his", extracted, warehouse_url=url, business_date=NIGHT, run_id="fhir-night-1")
        run_dbt(["seed", "--select", "his_fhir_encounter_classes", "his_fhir_surgery_procedures",
                 "his_fhir_department_map", "his_fhir_organizations", "his_fhir_discharge_dispositions",
                 "his_fhir_charge_categories"], warehouse_url=url, business_date=NIGHT, label="seed")
        run_dbt(["build", "--select", "path:models/staging/his", "path:models/staging/his_fhir",
                 "int_his__stays_enriched", "path:models/marts/his_fhir", "--exclude", "resource_type:unit_test",
                 "--indirect-selection", "cautious"],
                warehouse_url=url, business_date=NIGHT, label="fhir")
    return {"extracted": extracted, "loaded": loaded}


def figures_from_warehouse(url: str) -> dict:
    by_class = {(c, k): n for c, k, n in query(
        url, "select category, class_code, sum(encounters)::int from marts_build.fct_his_encounter_class_month "
             "group by 1, 2")}
    (stays,), = query(url, "select count(*) from intermediate.int_his__stays_enriched")
    discharges, bed_days, readmitted = query(
        url, "select count(*), sum(los_days)::int, count(*) filter (where is_readmitted_within_window) "
             "from intermediate.int_his__stays_enriched where discharged_at is not null")[0]
    (procedures,), = query(url, "select count(*) from staging.stg_his_fhir__procedures")
    surgeries = dict(query(url, "select grade, count(*) from staging.stg_his_fhir__procedures "
                                "where is_surgery group by 1"))
    on_stays = dict(query(url, "select coalesce(grade::text, 'ungraded'), count(*) from staging.stg_his__surgeries "
                               "group by 1"))
    return {
        "by_class": by_class, "stays": stays, "discharges": discharges, "bed_days": bed_days,
        "alos": round(bed_days / discharges, 4), "readmissions_31d": readmitted, "procedures": procedures,
        "surgeries": surgeries, "surgeries_on_stays": on_stays,
    }


@pytest.fixture(scope="module", params=["bundles", "bulk_ndjson", "bulk_server"])
def night(request, tmp_path_factory, fresh_database) -> SimpleNamespace:
    from hospital_ops_sim.fhir_bulk_server import FhirBulkServer

    root = tmp_path_factory.mktemp(request.param)
    bundles = write_bundles(root / "bundles")
    export = root / "bundles"
    if request.param == "bulk_ndjson":
        export = root / "ndjson"
        write_ndjson(bundles, export)
    url = fresh_database("fhir")
    var_dir = root / "var"
    if request.param == "bulk_server":  # served by the Bulk Data simulator, with faults on the way
        resources = [r for items in bulk_resources(bundles).values() for r in items]
        with FhirBulkServer(resources, token="bulk-token", file_lines=2000, errors_for={"no-such-id"}) as server:
            server.inject("rate_limit", "/$export", retry_after=1)
            server.inject("expired", "Encounter")
            server.inject("cut", "Claim")
            result = run_fhir_night(None, var_dir, url, server_url=server.url)
            assert any(method == "DELETE" for method, _, _ in server.requests)
    else:
        result = run_fhir_night(export, var_dir, url)
    return SimpleNamespace(url=url, var_dir=var_dir, bundles=bundles, result=result,
                           expected=expected_figures(bundles))


def test_figures_equal_an_independent_computation_from_the_files(night) -> None:
    assert night.expected["stays"] > 0 and night.expected["readmissions_31d"] > 0  # the sample exercises them
    assert figures_from_warehouse(night.url) == night.expected


def test_nothing_valid_is_rejected(night) -> None:
    assert query(night.url, "select count(*) from raw._quarantine")[0][0] == 0
    assert night.result["loaded"]["rows_quarantined"] == 0
    assert night.result["loaded"]["fhir_detail"]["rows_quarantined"] == 0


def test_unmapped_departments_are_counted_and_shown(night) -> None:
    unmapped, total = query(night.url, "select sum(encounters_unmapped_department), sum(encounters) "
                                       "from marts_build.fct_his_encounter_class_month")[0]
    assert total == sum(night.expected["by_class"].values())
    # the sample's providers are not in the department seed: every encounter is counted as unmapped
    assert unmapped == total
    (names,), = query(night.url, "select array_agg(distinct department_name) from staging.stg_his__departments")
    assert names == ["未映射科室 unmapped"]


def test_amounts_keep_their_currency_and_only_cny_reaches_the_ledger(night) -> None:
    currencies = dict(query(night.url, "select currency, count(*) from staging.stg_his_fhir__amounts group by 1"))
    assert set(currencies) == {"USD"}
    assert query(night.url, "select count(*) from staging.stg_his__charges")[0][0] == 0


def test_no_personal_identifier_in_any_file_or_table_after_the_night(night) -> None:
    needles = personal_needles(night.bundles)
    assert len(needles) > 100
    found = []
    for path in night.var_dir.rglob("*"):
        if path.is_file():
            text = path.read_bytes().decode("utf-8", errors="replace")
            found += [(str(path), n) for n in needles if n in text]
    tables = query(night.url, "select table_schema, table_name from information_schema.tables "
                              "where table_schema not in ('pg_catalog', 'information_schema')")
    for schema, table in tables:
        rows = query(night.url, f'select t::text from "{schema}"."{table}" t')
        text = "\n".join(r[0] for r in rows)
        found += [(f"{schema}.{table}", n) for n in needles if n in text]
    assert found == []
    # the landing folders are gone once loaded
    assert not any(p.suffix == ".csv" for p in (night.var_dir / "landing").rglob("*"))
