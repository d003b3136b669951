"""The FHIR R4 reader on planted cases: every reference form, partial dates, time zones, classes,
department mapping, dispositions and death, ungraded surgeries, currencies, malformed lines.
No database: the landing files are the result (the loader lands them like any HIS extract)."""

from __future__ import annotations

import csv
import gzip
import json
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from hospital_ops.extract.fhir_r4 import Found, Index, fhir_export_to_landing, hospital_time
from hospital_ops.load.parsing import pseudonymize

KEY = b"reader-test"
NIGHT = date(2026, 11, 29)
TZ = ZoneInfo("Asia/Shanghai")
MR = "http://hospital.example.org/mrn"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
SCT = "http://snomed.info/sct"

PATIENT = {
    "resourceType": "Patient", "id": "p1", "meta": {"lastUpdated": "2026-11-28T20:00:00-05:00"},
    "identifier": [
        {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
         "system": MR, "value": "MRN-778899"},
        {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "NI"}]},
         "system": "urn:oid:2.16.156.10011.1.2", "value": "110101199003071234"},
        {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PPN"}]},
         "value": "E12345678"},
    ],
    "name": [{"text": "张三"}, {"family": "Zhang", "given": ["San"]}],
    "telecom": [{"system": "phone", "value": "13800138000"}, {"system": "email", "value": "zs@example.com"}],
    "address": [{"line": ["朝阳区建国路88号"], "city": "北京"}],
    "gender": "male", "birthDate": "1990-03", "deceasedDateTime": "2026-03-20T02:00:00+08:00",
}
PATIENT_WITHOUT_MRN = {"resourceType": "Patient", "id": "p2", "gender": "female",
                      "identifier": [{"system": "urn:oid:1.2.3", "value": "SS-123"}]}
ORG = {"resourceType": "Organization", "id": "h1", "name": "Example Hospital",
       "identifier": [{"system": "http://hospital.example.org/org", "value": "H-001"}],
       "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "prov"}]}]}
LOCATION = {"resourceType": "Location", "id": "L1", "name": "Ward 3",
            "identifier": [{"system": "http://hospital-ops.example.org/fhir/sid/location", "value": "WARD-CARD-3"}]}
ROLE = {"resourceType": "PractitionerRole", "id": "R1", "practitioner": {"reference": "Practitioner/dr1"},
        "specialty": [{"coding": [{"system": SCT, "code": "394609007"}]}]}


def encounter(rid: str, klass: str, **extra) -> dict:
    return {"resourceType": "Encounter", "id": rid, "status": "finished",
            "class": {"system": ACT, "code": klass}, **extra}


def write_export(folder: Path) -> None:
    folder.mkdir(parents=True)
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": [
        {"fullUrl": "urn:uuid:aaaa-1111", "resource": PATIENT, "search": {"mode": "match"}},
        {"fullUrl": "https://fhir.example.org/fhir/Organization/h1", "resource": ORG},
        {"resource": LOCATION},
        {"resource": ROLE},
        {"fullUrl": "urn:uuid:enc-1", "resource": encounter(
            "E1", "IMP",
            subject={"reference": "https://fhir.example.org/fhir/Patient/p1/_history/3"},
            serviceProvider={"reference": "Organization?identifier=http://hospital.example.org/org|H-001"},
            location=[{"location": {"reference": "Location/L1"}}],
            period={"start": "2026-03-01T22:30:00-05:00", "end": "2026-03-05T10:00:00Z"},
            hospitalization={"dischargeDisposition": {"coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/discharge-disposition", "code": "home"}]}})},
        {"resource": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": encounter(
            "E2", "ACUTE",
            subject={"type": "Patient", "identifier": {"system": MR, "value": "MRN-778899"}},
            serviceProvider={"reference": "urn:uuid:aaaa-1111-not-here", "type": "Organization"},
            participant=[{"individual": {"reference": "Practitioner/dr1"}}],
            period={"start": "2026-03-18", "end": "2026-03-20T09:00:00+08:00"})}]}},
        {"request": {"method": "DELETE", "url": "Encounter/gone"}},
    ]}
    (folder / "searchset.json").write_text(json.dumps(bundle, ensure_ascii=False), encoding="utf-8")
    lines = [
        encounter("E3", "VR", subject={"reference": "Patient/p1"}),
        encounter("E4", "XYZ", subject={"reference": "Patient/p1"}),
        encounter("E5", "EMER", subject={"reference": "Patient/p1"}, period={"start": "2026-04-01T08:00:00+08:00"}),
        encounter("E6", "HH", subject={"reference": "Patient/p1"}),
    ]
    (folder / "Encounter.ndjson").write_text("".join(json.dumps(r) + "\n" for r in lines) + "{not json\n",
                                             encoding="utf-8")
    others = [
        {"resourceType": "Procedure", "id": "PR1", "status": "completed", "subject": {"reference": "Patient/p1"},
         "code": {"coding": [{"system": SCT, "code": "80146002", "display": "Appendectomy"}]},
         "encounter": {"reference": "urn:uuid:enc-1"}, "performedDateTime": "2026-03-02T09:00:00+08:00"},
        {"resourceType": "Procedure", "id": "PR2", "status": "completed", "subject": {"reference": "Patient/p1"},
         "code": {"coding": [{"system": SCT, "code": "699253003"}]}, "encounter": {"reference": "Encounter/E2"},
         "performedPeriod": {"start": "2026-03-19T10:00:00+08:00"}},
        {"resourceType": "Procedure", "id": "PR3", "status": "entered-in-error", "code": {"coding": [
            {"system": SCT, "code": "80146002"}]}, "encounter": {"reference": "Encounter/E1"}},
        {"resourceType": "Procedure", "id": "PR4", "status": "completed", "code": {"coding": [
            {"system": "http://www.ama-assn.org/go/cpt", "code": "99213"}]}, "encounter": {"reference": "Encounter/E5"}},
        {"resourceType": "Condition", "id": "C1", "subject": {"reference": "Patient/p1"},
         "encounter": {"reference": "Encounter/E1"}, "code": {"coding": [
             {"system": SCT, "code": "22298006"}, {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I21.9"}]},
         "onsetDateTime": "2026-03-01"},
        {"resourceType": "ChargeItem", "id": "CH1", "status": "billable", "context": {"reference": "Encounter/E1"},
         "code": {"coding": [{"system": "http://hospital-ops.example.org/fhir/CodeSystem/charge-category",
                              "code": "drug"}]},
         "priceOverride": {"value": 1234.5, "currency": "CNY"}, "occurrenceDateTime": "2026-03-03T12:00:00+08:00"},
        {"resourceType": "ChargeItem", "id": "CH2", "status": "billable", "context": {"reference": "Encounter/E5"},
         "code": {"text": "consult"}, "priceOverride": {"value": 80, "currency": "EUR"},
         "occurrenceDateTime": "2026-04-01T08:30:00+08:00"},
        {"resourceType": "Observation", "id": "O1", "status": "final"},
    ]
    with gzip.open(folder / "more.ndjson.gz", "wt", encoding="utf-8") as handle:
        handle.write("".join(json.dumps(r) + "\n" for r in others))
    (folder / "manifest.json").write_text(json.dumps({"transactionTime": "2026-11-29T01:00:00Z", "output": []}))
    (folder / "Patient.ndjson").write_text(json.dumps(PATIENT_WITHOUT_MRN) + "\n", encoding="utf-8")


def rows(folder: Path, name: str) -> dict[str, dict[str, str]]:
    path = folder / name
    if not path.exists():
        return {}
    with path.open(encoding="utf-8") as handle:
        return {next(iter(r.values())): r for r in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def landed(tmp_path_factory):
    root = tmp_path_factory.mktemp("fhir_reader")
    write_export(root / "export")
    result = fhir_export_to_landing(root / "export", root / "landing", NIGHT, key=KEY, tz=TZ)
    return result


def test_every_reference_form_resolves_to_the_same_patient_and_organization(landed) -> None:
    encounters = rows(landed.fhir_folder, "his_fhir_encounters.csv")
    patient = pseudonymize("Patient/p1", KEY)
    for rid in ("E1", "E2", "E3", "E4", "E5", "E6"):  # absolute+versioned, identifier-only, relative
        assert encounters[rid]["patient_id"] == patient, rid
    assert encounters["E1"]["hospital_id"] == "h1"  # conditional reference by identifier
    assert encounters["E2"]["hospital_id"] == "aaaa-1111-not-here"  # urn:uuid outside the export: its id
    assert encounters["E5"]["hospital_id"] == "UNKNOWN"  # no serviceProvider at all


def test_contained_references_resolve_inside_their_resource() -> None:
    index = Index()
    eob = {"resourceType": "ExplanationOfBenefit", "id": "x", "contained": [{"resourceType": "Coverage", "id": "cov"}]}
    index.add(Found(eob, None, "t"))
    assert index.resolve({"reference": "#cov"}, eob, ("Coverage",)) == ("Coverage", "x#cov")
    assert index.resolve({"reference": "#nothing"}, eob, ("Coverage",)) is None


def test_classes_map_by_the_seed_and_unknown_ones_are_other(landed) -> None:
    encounters = rows(landed.fhir_folder, "his_fhir_encounters.csv")
    assert {rid: encounters[rid]["category"] for rid in ("E1", "E2", "E3", "E4", "E5", "E6")} == {
        "E1": "inpatient", "E2": "inpatient", "E3": "other", "E4": "other", "E5": "emergency", "E6": "other"}
    assert set(rows(landed.his_folder, "his_inpatient_stays.csv")) == {"E1", "E2"}
    visits = rows(landed.his_folder, "his_outpatient_visits.csv")
    assert set(visits) == {"E5"} and visits["E5"]["visit_type"] == "emergency"


def test_departments_from_location_or_practitioner_role_and_unmapped_counted(landed) -> None:
    encounters = rows(landed.fhir_folder, "his_fhir_encounters.csv")
    assert (encounters["E1"]["department_id"], encounters["E1"]["department_mapped"]) == ("FHIR-CARD", "true")
    assert (encounters["E2"]["department_id"], encounters["E2"]["department_mapped"]) == ("FHIR-GS", "true")
    assert (encounters["E5"]["department_id"], encounters["E5"]["department_mapped"]) == ("UNMAPPED-UNKNOWN", "false")
    assert landed.unmapped_encounters == 4
    departments = rows(landed.his_folder, "his_departments.csv")
    assert departments["FHIR-CARD"]["department_name"] == "心内科 Cardiology"
    assert departments["UNMAPPED-UNKNOWN"]["department_name"] == "未映射科室 unmapped"


def test_times_convert_to_the_hospital_zone_and_partial_dates_are_their_first_day(landed) -> None:
    stays = rows(landed.his_folder, "his_inpatient_stays.csv")
    assert stays["E1"]["admitted_at"] == "2026-03-02 11:30:00"  # 22:30 at UTC-5
    assert stays["E1"]["discharged_at"] == "2026-03-05 18:00:00"  # 10:00Z
    assert stays["E2"]["admitted_at"] == "2026-03-18 00:00:00"  # a date
    assert rows(landed.his_folder, "his_patients.csv")[pseudonymize("Patient/p1", KEY)]["birth_date"] == "1990-03-01"
    assert hospital_time("1980", TZ) == datetime(1980, 1, 1)


def test_dispositions_by_the_seed_and_death_from_patient_deceased(landed) -> None:
    stays = rows(landed.his_folder, "his_inpatient_stays.csv")
    assert stays["E1"]["discharge_disposition"] == "home"
    assert stays["E2"]["discharge_disposition"] == "death"  # deceasedDateTime within the stay


def test_surgeries_and_grades_from_the_seed_ungraded_when_blank(landed) -> None:
    procedures = rows(landed.fhir_folder, "his_fhir_procedures.csv")
    assert set(procedures) == {"PR1", "PR2", "PR4"}  # PR3 entered-in-error is withdrawn
    assert (procedures["PR1"]["is_surgery"], procedures["PR1"]["grade"]) == ("true", "2")
    assert (procedures["PR2"]["is_surgery"], procedures["PR2"]["grade"]) == ("true", "ungraded")
    assert (procedures["PR4"]["is_surgery"], procedures["PR4"]["code_system"]) == ("false", "http://www.ama-assn.org/go/cpt")
    surgeries = rows(landed.his_folder, "his_surgeries.csv")
    assert surgeries["PR1"]["grade"] == "2" and surgeries["PR2"]["grade"] == ""
    assert landed.read.withdrawn == 1 and landed.read.skipped_types == {"Observation": 1}


def test_icd10_conditions_of_stays_are_diagnoses_with_their_system_kept(landed) -> None:
    conditions = rows(landed.fhir_folder, "his_fhir_conditions.csv")
    assert conditions["C1"]["code_system"] == SCT
    diagnoses = list(rows(landed.his_folder, "his_diagnoses.csv").values())
    assert [(d["stay_id"], d["icd10_code"], d["is_primary"]) for d in diagnoses] == [("E1", "I21.9", "true")]


def test_money_keeps_its_currency_and_only_cny_becomes_a_charge(landed) -> None:
    amounts = rows(landed.fhir_folder, "his_fhir_amounts.csv")
    assert {(a["resource_id"], a["amount"], a["currency"]) for a in amounts.values()} == {
        ("CH1", "1234.5", "CNY"), ("CH2", "80", "EUR")}
    charges = rows(landed.his_folder, "his_charges.csv")
    assert set(charges) == {"CH1"}
    assert (charges["CH1"]["stay_id"], charges["CH1"]["category"], charges["CH1"]["department_id"]) == \
        ("E1", "drug", "FHIR-CARD")


def test_updated_at_is_last_updated_or_the_export_transaction_time(landed) -> None:
    assert rows(landed.his_folder, "his_patients.csv")[pseudonymize("Patient/p1", KEY)]["updated_at"] == \
        "2026-11-29 09:00:00"  # 20:00 at UTC-5
    assert rows(landed.fhir_folder, "his_fhir_encounters.csv")["E3"]["updated_at"] == "2026-11-29 09:00:00"


def test_a_malformed_line_is_kept_visible_with_file_and_line(landed) -> None:
    assert landed.read.malformed == [("Encounter.ndjson:5: invalid JSON (Expecting property name enclosed in "
                                     "double quotes: line 1 column 2 (char 1))")]
    encounters = rows(landed.fhir_folder, "his_fhir_encounters.csv")
    assert any(r["updated_at"].startswith("not FHIR: Encounter.ndjson:5") for r in encounters.values())


def test_nothing_personal_is_written(landed) -> None:
    text = "".join(p.read_text(encoding="utf-8") for folder in (landed.his_folder, landed.fhir_folder)
                   for p in folder.iterdir())
    for needle in ("张三", "Zhang", "13800138000", "zs@example.com", "建国路", "MRN-778899", "110101199003071234",
                   "E12345678", ",p1,"):
        assert needle not in text, needle


def test_the_his_interface_is_configuration(monkeypatch) -> None:
    from hospital_ops.extract.fhir_night import HisConfigurationError, his_kind

    monkeypatch.delenv("HIS_KIND", raising=False)
    assert his_kind() == "sql"  # the default
    monkeypatch.setenv("HIS_KIND", "FHIR")
    assert his_kind() == "fhir"
    monkeypatch.setenv("HIS_KIND", "hl7v2")
    with pytest.raises(HisConfigurationError, match="HIS_KIND='hl7v2': must be one of sql, fhir"):
        his_kind()


def test_identifiers_land_as_the_sql_extractors_pseudonyms_and_nothing_personal_in_clear(landed) -> None:
    patient = rows(landed.his_folder, "his_patients.csv")[pseudonymize("Patient/p1", KEY)]
    identifiers = {i["type"]["coding"][0]["code"]: i["value"] for i in PATIENT["identifier"]}
    # the keyed hash of the identifier's value alone, as the SQL extractor writes national_id / mrn, so a
    # referral matched by national ID finds the FHIR patient; the `_pseudo` header tells the loader so
    assert patient["national_id_pseudo"] == pseudonymize(identifiers["NI"], KEY)
    assert patient["mrn_pseudo"] == pseudonymize(identifiers["MR"], KEY)
    assert "national_id" not in patient and "mrn" not in patient
    clear = [*identifiers.values(), PATIENT["name"][0]["text"], PATIENT["name"][1]["family"],
             *(t["value"] for t in PATIENT["telecom"]), PATIENT["address"][0]["line"][0]]
    for path in [*landed.his_folder.rglob("*"), *landed.fhir_folder.rglob("*")]:
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert not [value for value in clear if value in text], path.name


def test_a_patient_without_a_record_number_gets_its_id_hashed_once_as_the_sql_extractor_would(landed) -> None:
    patients = rows(landed.his_folder, "his_patients.csv")
    with_mrn = patients[pseudonymize("Patient/p1", KEY)]
    without = patients[pseudonymize("Patient/p2", KEY)]
    # the SQL extractor's mrn of a HIS whose record number is the patient id: one keyed hash of it
    assert without["mrn_pseudo"] == pseudonymize("p2", KEY)
    assert without["mrn_pseudo"] != pseudonymize(pseudonymize("Patient/p2", KEY), KEY)  # not hashed twice
    assert with_mrn["mrn_pseudo"] == pseudonymize("MRN-778899", KEY)  # an MR identifier wins
