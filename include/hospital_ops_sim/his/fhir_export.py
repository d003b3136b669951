"""The simulated HIS exported as HL7 FHIR R4 Bulk Data NDJSON, in the profile of
`hospital_ops.extract.fhir_profile`; `hospital_ops.extract.fhir_r4`, the one FHIR reader, reads it back."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path

import sqlalchemy as sa

from hospital_ops.extract import fhir_profile as F
from hospital_ops_sim.his.database import TABLES

log = logging.getLogger(__name__)


# ===================================================================================== FHIR export


@dataclass
class FhirExport:
    out_dir: Path
    transaction_time: str
    counts: dict[str, int]  # resource type -> resources written
    paths: list[Path]


def write_fhir_bulk(url: str, out_dir: Path, *, since: datetime | None = None, until: datetime | None = None,
                    tz: tzinfo = F.HIS_TZ) -> FhirExport:
    """Export the HIS as FHIR R4 Bulk Data NDJSON (one file per resource type) plus `manifest.json`.

    Like `$export?_since=`: only resources whose `updated_at` is after `since` (and before `until`,
    exclusive, when given). Coding systems and extensions: `hospital_ops.extract.fhir_profile`; read by
    `hospital_ops.extract.fhir_r4`, the one FHIR reader.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url)
    counts: dict[str, int] = {}
    paths: list[Path] = []
    latest: datetime | None = None
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with conn.begin():
                for resource_type, query, build in _fhir_queries():
                    path = out_dir / f"{resource_type}.ndjson"
                    count = 0
                    with path.open("w", encoding="utf-8", newline="\n") as handle:
                        for row in _stream(conn, query, since, until):
                            handle.write(json.dumps(build(row, tz), ensure_ascii=False, separators=(",", ":")))
                            handle.write("\n")
                            count += 1
                            latest = row.updated_at if latest is None or row.updated_at > latest else latest
                    counts[resource_type] = count
                    paths.append(path)
    finally:
        engine.dispose()
    transaction_time = F.fhir_instant(until or latest or datetime(1970, 1, 1), tz)
    manifest = {
        "transactionTime": transaction_time,
        "request": f"[base]/$export?_type={','.join(counts)}" + (f"&_since={F.fhir_instant(since, tz)}" if since else ""),
        "requiresAccessToken": False,
        "output": [{"type": t, "url": (out_dir / f"{t}.ndjson").resolve().as_uri(), "count": n}
                   for t, n in counts.items()],
        "error": [],
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    log.info("FHIR bulk export to %s: %s", out_dir, counts)
    return FhirExport(out_dir, transaction_time, counts, paths)


def _stream(conn: sa.Connection, query: sa.Select, since: datetime | None,
            until: datetime | None) -> Iterator[sa.Row]:
    stamp = query.selected_columns.updated_at
    if since is not None:
        query = query.where(stamp > since)
    if until is not None:
        query = query.where(stamp < until)
    for partition in conn.execution_options(yield_per=5_000).execute(query).partitions():
        yield from partition


def _fhir_queries() -> list[tuple[str, sa.Select, Callable[[sa.Row, tzinfo], dict]]]:
    h, d, p = TABLES["hospitals"], TABLES["departments"], TABLES["patients"]
    v, s, dx = TABLES["outpatient_visits"], TABLES["inpatient_stays"], TABLES["diagnoses"]
    op, ch = TABLES["surgeries"], TABLES["charges"]
    organizations = sa.union_all(
        sa.select(sa.literal("prov").label("org_type"), h.c.hospital_id.label("id"), h.c.hospital_name.label("name"),
                  sa.null().label("part_of"), sa.null().label("kind"), h.c.campus_name, h.c.level,
                  h.c.consortium_role, h.c.updated_at),
        sa.select(sa.literal("dept"), d.c.department_id, d.c.department_name, d.c.hospital_id, d.c.kind,
                  sa.null(), sa.null(), sa.null(), d.c.updated_at),
    ).subquery()
    encounters = sa.union_all(
        sa.select(sa.literal("visit").label("kind"), v.c.visit_id.label("id"), v.c.patient_id, v.c.department_id,
                  v.c.doctor_id, v.c.visit_at.label("start"), sa.null().label("end"), v.c.visit_type,
                  sa.null().label("disposition"), sa.null().label("planned"), v.c.updated_at),
        sa.select(sa.literal("stay"), s.c.stay_id, s.c.patient_id, s.c.department_id, s.c.attending_doctor_id,
                  s.c.admitted_at, s.c.discharged_at, sa.null(), s.c.discharge_disposition, s.c.planned_readmission,
                  s.c.updated_at),
    ).subquery()
    return [
        ("Organization", sa.select(organizations).order_by(organizations.c.org_type.desc(), organizations.c.id),
         _fhir_organization),
        ("Patient", sa.select(p).order_by(p.c.patient_id), _fhir_patient),
        ("Encounter", sa.select(encounters).order_by(encounters.c.id), _fhir_encounter),
        ("Condition", sa.select(dx, s.c.patient_id).join_from(dx, s).order_by(dx.c.stay_id, dx.c.seq_no),
         _fhir_condition),
        ("Procedure", sa.select(op, s.c.patient_id).join_from(op, s).order_by(op.c.surgery_id), _fhir_procedure),
        ("ChargeItem", sa.select(ch, sa.func.coalesce(v.c.patient_id, s.c.patient_id).label("patient_id"),
                                 v.c.visit_type)
         .select_from(ch.outerjoin(v, ch.c.visit_id == v.c.visit_id).outerjoin(s, ch.c.stay_id == s.c.stay_id))
         .order_by(ch.c.charge_id), _fhir_charge_item),
    ]


def _meta(row: sa.Row, tz: tzinfo) -> dict:
    return {"lastUpdated": F.fhir_instant(row.updated_at, tz)}


def _ref(resource_type: str, resource_id: str | None) -> dict | None:
    return {"reference": f"{resource_type}/{resource_id}"} if resource_id else None


def _drop_none(resource: dict) -> dict:
    return {key: value for key, value in resource.items() if value not in (None, [], {})}


def _fhir_organization(row: sa.Row, tz: tzinfo) -> dict:
    types = [{"coding": [{"system": F.ORGANIZATION_TYPE_SYSTEM, "code": row.org_type,
                          "display": "Healthcare Provider" if row.org_type == "prov" else "Hospital Department"}]}]
    extensions = []
    if row.org_type == "prov":
        extensions = [{"url": F.EXT_CAMPUS_NAME, "valueString": row.campus_name},
                      {"url": F.EXT_HOSPITAL_LEVEL, "valueCode": row.level},
                      {"url": F.EXT_CONSORTIUM_ROLE, "valueCode": row.consortium_role}]
    else:
        types.append({"coding": [{"system": F.DEPARTMENT_KIND_SYSTEM, "code": row.kind}]})
    return _drop_none({"resourceType": "Organization", "id": row.id, "meta": _meta(row, tz), "extension": extensions,
                       "active": True, "type": types, "name": row.name, "partOf": _ref("Organization", row.part_of)})


def _identifier(type_code: str, display: str, system: str, value: str | None, use: str) -> dict | None:
    if value is None:
        return None
    return {"use": use, "type": {"coding": [{"system": F.IDENTIFIER_TYPE_SYSTEM, "code": type_code,
                                             "display": display}]}, "system": system, "value": value}


def _fhir_patient(row: sa.Row, tz: tzinfo) -> dict:
    identifiers = [_identifier("MR", "Medical record number", F.MRN_SYSTEM, row.mrn, "usual"),
                   _identifier("NI", "National unique individual identifier", F.NATIONAL_ID_SYSTEM, row.national_id,
                               "official")]
    return _drop_none({
        "resourceType": "Patient", "id": row.patient_id, "meta": _meta(row, tz),
        "identifier": [i for i in identifiers if i],
        "name": [{"use": "official", "text": row.patient_name}] if row.patient_name else None,
        "telecom": [{"system": "phone", "value": row.phone, "use": "mobile"}] if row.phone else None,
        "gender": F.GENDER_TO_FHIR.get(row.gender),
        "birthDate": row.birth_date.isoformat() if row.birth_date else None,
    })


def _fhir_encounter(row: sa.Row, tz: tzinfo) -> dict:
    if row.kind == "visit":
        code = "EMER" if row.visit_type == "emergency" else "AMB"
        encounter_class = {"system": F.ACT_CODE_SYSTEM, "code": code,
                           "display": "emergency" if code == "EMER" else "ambulatory"}
        types = [{"coding": [{"system": F.VISIT_TYPE_SYSTEM, "code": row.visit_type}]}]
        participant_type = "PPRF"
    else:
        encounter_class = {"system": F.ACT_CODE_SYSTEM, "code": "IMP", "display": "inpatient encounter"}
        types = None
        participant_type = "ATND"
    participants = [{"type": [{"coding": [{"system": F.PARTICIPATION_TYPE_SYSTEM, "code": participant_type}]}],
                     "individual": _ref("Practitioner", row.doctor_id)}] if row.doctor_id else None
    period = _drop_none({"start": F.fhir_instant(row.start, tz), "end": F.fhir_instant(row.end, tz) if row.end else None})
    hospitalization = None
    extensions = None
    if row.kind == "stay":
        if row.disposition:
            hospitalization = {"dischargeDisposition": {"coding": [{"system": F.DISCHARGE_DISPOSITION_SYSTEM,
                                                                    "code": F.DISPOSITION_TO_FHIR[row.disposition]}]}}
        if row.planned is not None:
            extensions = [{"url": F.EXT_PLANNED_READMISSION, "valueBoolean": bool(row.planned)}]
    finished = row.kind == "visit" or row.end is not None
    return _drop_none({
        "resourceType": "Encounter", "id": row.id, "meta": _meta(row, tz), "extension": extensions,
        "status": "finished" if finished else "in-progress", "class": encounter_class, "type": types,
        "subject": _ref("Patient", row.patient_id), "participant": participants, "period": period,
        "hospitalization": hospitalization, "serviceProvider": _ref("Organization", row.department_id),
    })


def _fhir_condition(row: sa.Row, tz: tzinfo) -> dict:
    return {
        "resourceType": "Condition", "id": f"{row.stay_id}-{row.seq_no}", "meta": _meta(row, tz),
        "extension": [{"url": F.EXT_ENCOUNTER_CLASS, "valueCode": "IMP"},
                      {"url": F.EXT_DIAGNOSIS_SEQUENCE, "valueInteger": row.seq_no},
                      {"url": F.EXT_PRIMARY_DIAGNOSIS, "valueBoolean": bool(row.is_primary)},
                      {"url": F.EXT_COMPLICATION, "valueBoolean": bool(row.is_complication)}],
        "verificationStatus": {"coding": [{"system": F.CONDITION_VERIFICATION_SYSTEM, "code": "confirmed"}]},
        "category": [{"coding": [{"system": F.CONDITION_CATEGORY_SYSTEM, "code": "encounter-diagnosis"}]}],
        "code": {"coding": [{"system": F.ICD10_SYSTEM, "code": row.icd10_code, "display": row.diagnosis_name}],
                 "text": row.diagnosis_name},
        "subject": _ref("Patient", row.patient_id), "encounter": _ref("Encounter", row.stay_id),
        "recordedDate": F.fhir_instant(row.created_at, tz),
    }


def _fhir_procedure(row: sa.Row, tz: tzinfo) -> dict:
    return _drop_none({
        "resourceType": "Procedure", "id": row.surgery_id, "meta": _meta(row, tz),
        "extension": [{"url": F.EXT_ENCOUNTER_CLASS, "valueCode": "IMP"},
                      {"url": F.EXT_SURGERY_GRADE, "valueInteger": row.grade},
                      {"url": F.EXT_MINIMALLY_INVASIVE, "valueBoolean": bool(row.minimally_invasive)}],
        "status": "completed",
        "code": {"coding": [{"system": F.ICD9CM_SYSTEM, "code": row.procedure_code, "display": row.procedure_name}]},
        "subject": _ref("Patient", row.patient_id), "encounter": _ref("Encounter", row.stay_id),
        "performedDateTime": F.fhir_instant(row.performed_at, tz),
        "performer": [{"actor": _ref("Practitioner", row.surgeon_id)}] if row.surgeon_id else None,
    })


def _fhir_charge_item(row: sa.Row, tz: tzinfo) -> dict:
    encounter_id = row.visit_id or row.stay_id
    encounter_class = "IMP" if row.stay_id else ("EMER" if row.visit_type == "emergency" else "AMB")
    return {
        "resourceType": "ChargeItem", "id": row.charge_id, "meta": _meta(row, tz),
        "extension": [{"url": F.EXT_ENCOUNTER_CLASS, "valueCode": encounter_class}],
        "status": "billed",
        "code": {"coding": [{"system": F.CHARGE_CATEGORY_SYSTEM, "code": row.category}]},
        "subject": _ref("Patient", row.patient_id), "context": _ref("Encounter", encounter_id),
        "occurrenceDateTime": F.fhir_instant(row.charged_at, tz),
        "requestingOrganization": _ref("Organization", row.department_id),
        "quantity": {"value": 1},
        # exact to the cent: a float's shortest repr of a two-decimal amount reads back as the same Decimal
        "priceOverride": {"value": float(row.amount_cny), "currency": "CNY"},
        "enteredDate": F.fhir_instant(row.created_at, tz),
    }
