"""HL7 FHIR R4 Bulk Data (NDJSON) → the HIS landing CSVs, and the FHIR profile both sides share.

A hospital whose HIS offers a FHIR API instead of database access delivers a Bulk Data `$export`:
one NDJSON file per resource type (`Patient.ndjson`, `Encounter.ndjson`, … possibly split as
`Patient_2.ndjson`), one resource per line. `fhir_to_landing` maps them onto the entities of
`hospital_ops.sources.his.SOURCE` and writes the same `his_<table>.csv` files the SQL extractor
writes, so the same loader lands both:

| FHIR R4 resource | entity | how |
|---|---|---|
| Organization, type `prov` (organization-type) | hospitals | campus, level and consortium role in extensions |
| Organization, type `dept` | departments | `partOf` → hospital; kind as a coding in `department-kind` |
| Patient | patients | identifiers by type NI (resident ID 身份证号) and MR (病案号), phone from `telecom`, gender ↔ GB/T 2261.1 |
| Encounter, class AMB or EMER (v3-ActCode) | outpatient_visits | `serviceProvider` → department Organization, `participant` → doctor, `period.start` |
| Encounter, class IMP, ACUTE or NONAC | inpatient_stays | `period`, `hospitalization.dischargeDisposition`, planned-readmission extension |
| Condition | diagnoses | `encounter` → stay; ICD-10 coding; sequence, primary and complication in extensions |
| Procedure | surgeries | ICD-9-CM-3 coding; grade 1–4 and minimally invasive in extensions |
| ChargeItem | charges | `context` → visit or stay (by the Encounter's class); category coding; `priceOverride` CNY |

`meta.lastUpdated` becomes `updated_at`; FHIR instants are converted to HIS local time (UTC+8, no
zone) to compare with the SQL path. Staff, beds and equipment are not read from FHIR (Practitioner,
Location and Device would carry them; the SQL extract covers them).

Coding systems. Diagnoses use `http://hl7.org/fhir/sid/icd-10`: the generator's codes are WHO
ICD-10 at the four-character level, which the Chinese clinical edition (国家临床版) extends with
extra digits; a hospital sending the national extension codes would use its own system URI and map
it here. Procedures use `http://hl7.org/fhir/sid/icd-9-cm` (ICD-9-CM-3, as on Chinese front pages).
Everything local to this project — identifier namespaces, extensions and small code systems — lives
under `http://hospital-ops.example.org/fhir/` (an example domain: a deployment substitutes its own
registered namespace); identifiers are recognised by their v2-0203 type code first, then by system.

Malformed lines are never dropped. A line that cannot be mapped at all — bad JSON, not an object, the
wrong resourceType for its file, an Encounter class or Organization type that routes nowhere, a
ChargeItem whose encounter class is unknown, a reference or element of the wrong shape — is written
to the entity file as a *reject row*: every column blank except `updated_at`, which carries
`rejected FHIR line <file>:<line>: <reason>`. The loader then quarantines it with that text in its
reason (the timestamp does not parse and the key is missing), so it is counted in the file's
reconciliation and visible in `raw._quarantine`. The line's content is not copied (it may hold
personal identifiers). A line that maps but lacks a required value (no id, no lastUpdated, no ICD-10
coding) is written as mapped and quarantined by the loader with the column's own reason. Every reject
is also returned in `FhirLanding.rejects`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any

from hospital_ops.config import pseudonym_key
from hospital_ops.extract import LandingFolder, landing_text
from hospital_ops.load.files import SourceFileError
from hospital_ops.sources.his import SOURCE as HIS_SOURCE
from hospital_ops.sources.spec import Source

log = logging.getLogger(__name__)

HIS_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")  # China has no daylight saving time

# ------------------------------------------------------------------------------ FHIR profile

FHIR_BASE = "http://hospital-ops.example.org/fhir"
ICD10_SYSTEM = "http://hl7.org/fhir/sid/icd-10"
ICD9CM_SYSTEM = "http://hl7.org/fhir/sid/icd-9-cm"
NATIONAL_ID_SYSTEM = f"{FHIR_BASE}/sid/cn-resident-id"
MRN_SYSTEM = f"{FHIR_BASE}/sid/mrn"
IDENTIFIER_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0203"
ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ORGANIZATION_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/organization-type"
DISCHARGE_DISPOSITION_SYSTEM = "http://terminology.hl7.org/CodeSystem/discharge-disposition"
PARTICIPATION_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
CONDITION_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-category"
CONDITION_VERIFICATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
DEPARTMENT_KIND_SYSTEM = f"{FHIR_BASE}/CodeSystem/department-kind"
VISIT_TYPE_SYSTEM = f"{FHIR_BASE}/CodeSystem/visit-type"
CHARGE_CATEGORY_SYSTEM = f"{FHIR_BASE}/CodeSystem/charge-category"

_EXT = f"{FHIR_BASE}/StructureDefinition"
EXT_CAMPUS_NAME = f"{_EXT}/campus-name"  # valueString, on a hospital Organization
EXT_HOSPITAL_LEVEL = f"{_EXT}/hospital-level"  # valueCode tertiary | secondary | primary
EXT_CONSORTIUM_ROLE = f"{_EXT}/consortium-role"  # valueCode lead | member
EXT_PLANNED_READMISSION = f"{_EXT}/planned-readmission-31d"  # valueBoolean, 是否有出院31天内再住院计划
EXT_DIAGNOSIS_SEQUENCE = f"{_EXT}/diagnosis-sequence"  # valueInteger, order on the front page
EXT_PRIMARY_DIAGNOSIS = f"{_EXT}/primary-diagnosis"  # valueBoolean, 主要诊断
EXT_COMPLICATION = f"{_EXT}/complication-during-stay"  # valueBoolean, 入院病情 = 无
EXT_SURGERY_GRADE = f"{_EXT}/surgery-grade"  # valueInteger 1-4, 手术分级
EXT_MINIMALLY_INVASIVE = f"{_EXT}/minimally-invasive"  # valueBoolean, 微创
EXT_ENCOUNTER_CLASS = f"{_EXT}/encounter-class"  # valueCode AMB | EMER | IMP, on ChargeItem (see below)

OUTPATIENT_CLASSES = ("AMB", "EMER")
INPATIENT_CLASSES = ("IMP", "ACUTE", "NONAC")
DISPOSITION_TO_FHIR = {"home": "home", "transfer": "other-hcf", "death": "exp", "against_advice": "aadvice"}
DISPOSITION_FROM_FHIR = {code: disposition for disposition, code in DISPOSITION_TO_FHIR.items()}
GENDER_TO_FHIR = {"1": "male", "2": "female", "0": "unknown", "9": "other"}
GENDER_FROM_FHIR = {code: gender for gender, code in GENDER_TO_FHIR.items()}

# the entity a line of each file type lands in when it is rejected before its class is known
SUPPORTED_TYPES: dict[str, str] = {
    "Organization": "departments",
    "Patient": "patients",
    "Encounter": "outpatient_visits",
    "Condition": "diagnoses",
    "Procedure": "surgeries",
    "ChargeItem": "charges",
}
_FILE_TYPE = re.compile(r"^(?:\d+\.)?([A-Z][A-Za-z]+)")


def fhir_instant(value: datetime, tz: tzinfo = HIS_TZ) -> str:
    """A naive HIS local time as a FHIR instant (seconds and zone offset are mandatory)."""
    return value.replace(tzinfo=tz, microsecond=0).isoformat(timespec="seconds")


def local_time(text: object, tz: tzinfo = HIS_TZ) -> object:
    """A FHIR instant/dateTime as naive HIS local time; text that does not parse is passed through
    unchanged so the loader quarantines it with its own message."""
    if not isinstance(text, str):
        return text
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return text
    if value.tzinfo is not None:
        value = value.astimezone(tz).replace(tzinfo=None)
    return value


# ------------------------------------------------------------------------------------ reading


class FhirLineError(ValueError):
    """A line that cannot be mapped to a row (the reason names the element)."""


@dataclass(frozen=True)
class FhirReject:
    file: str
    line: int
    resource_type: str
    entity: str
    reason: str


@dataclass
class FhirLanding:
    folder: Path
    paths: list[Path] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # rows written per entity, rejects included
    rejects: list[FhirReject] = field(default_factory=list)
    skipped_files: list[str] = field(default_factory=list)  # resource types this reader does not map


@dataclass(frozen=True)
class _Context:
    tz: tzinfo
    encounter_classes: Mapping[str, str]  # Encounter id -> class code

    def time(self, text: object) -> object:
        return local_time(text, self.tz)


def fhir_to_landing(
    ndjson_dir: Path,
    landing_dir: Path,
    business_date: date,
    *,
    source: Source = HIS_SOURCE,
    tz: tzinfo = HIS_TZ,
    encounter_classes: Mapping[str, str] | None = None,
    key: bytes | None = None,
) -> FhirLanding:
    """Map a Bulk Data export in `ndjson_dir` to `<landing>/<source>/<business_date>/his_*.csv`.

    `encounter_classes` (Encounter id → class code) resolves ChargeItems whose Encounter is not in
    this export (an incremental `_since` export); the export's own Encounters always win.
    """
    by_type = _files_by_type(Path(ndjson_dir))
    result = FhirLanding(folder=Path())
    for resource_type in sorted(set(by_type) - set(SUPPORTED_TYPES)):
        names = [path.name for path in by_type[resource_type]]
        log.warning("FHIR export %s: %s not mapped to any HIS entity, skipped", ndjson_dir, ", ".join(names))
        result.skipped_files.extend(names)
    classes = dict(encounter_classes or {})
    classes.update(_encounter_classes(by_type.get("Encounter", [])))
    context = _Context(tz, classes)
    # personal columns are written as their pseudonyms (LandingFolder), the same as the SQL extractor's
    with LandingFolder(landing_dir, source, business_date, key=pseudonym_key() if key is None else key) as folder:
        for resource_type, default_entity in SUPPORTED_TYPES.items():
            for path in by_type.get(resource_type, []):
                _read_file(path, resource_type, default_entity, source, folder, context, result)
        result.paths = folder.commit()
        result.rows = dict(folder.rows)
        result.folder = folder.final
    log.info("FHIR export %s → %s: %d rows, %d rejected lines", ndjson_dir, result.folder,
             sum(result.rows.values()), len(result.rejects))
    return result


def _files_by_type(ndjson_dir: Path) -> dict[str, list[Path]]:
    if not ndjson_dir.is_dir():
        raise SourceFileError(f"{ndjson_dir}: FHIR export folder not found")
    by_type: dict[str, list[Path]] = {}
    for path in sorted(ndjson_dir.glob("*.ndjson")):
        match = _FILE_TYPE.match(path.name)
        by_type.setdefault(match.group(1) if match else path.stem, []).append(path)
    return by_type


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open("r", encoding="utf-8-sig", errors="strict") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line


def _encounter_classes(paths: list[Path]) -> dict[str, str]:
    """First pass over the Encounters: id → class code (lines that do not parse are rejected later)."""
    classes: dict[str, str] = {}
    for path in paths:
        for _, line in _lines(path):
            try:
                resource = json.loads(line)
                classes[str(resource["id"])] = str(resource["class"]["code"])
            except (ValueError, KeyError, TypeError):
                continue
    return classes


def _read_file(path: Path, resource_type: str, default_entity: str, source: Source, folder: LandingFolder,
               context: _Context, result: FhirLanding) -> None:
    mapper = _MAPPERS[resource_type]
    try:
        for number, line in _lines(path):
            try:
                resource = _parse(line, resource_type)
                entity_name, row = mapper(resource, context)
                entity = source.entity(entity_name)
                values = [_cell(row.get(column.name), column.name) for column in entity.columns]
            except FhirLineError as exc:
                _reject(source, folder, result, FhirReject(path.name, number, resource_type, default_entity,
                                                           str(exc)))
                continue
            folder.write(entity, values)
    except UnicodeDecodeError as exc:
        raise SourceFileError(f"{path}: not UTF-8 NDJSON ({exc})") from exc


def _cell(value: object, column: str) -> str:
    if isinstance(value, (dict, list)):
        raise FhirLineError(f"the element mapped to {column} must be a single value, not a JSON {type(value).__name__}")
    return value if isinstance(value, str) else landing_text(value)


def _reject(source: Source, folder: LandingFolder, result: FhirLanding, reject: FhirReject) -> None:
    log.warning("FHIR %s line %d rejected: %s", reject.file, reject.line, reject.reason)
    result.rejects.append(reject)
    entity = source.entity(reject.entity)
    message = f"rejected FHIR line {reject.file}:{reject.line}: {reject.reason}"
    folder.write(entity, [message if column.name == "updated_at" else "" for column in entity.columns])


def _parse(line: str, resource_type: str) -> dict[str, Any]:
    try:
        resource = json.loads(line, parse_float=Decimal)
    except ValueError as exc:
        raise FhirLineError(f"invalid JSON ({exc})") from None
    if not isinstance(resource, dict):
        raise FhirLineError(f"a line must hold one JSON object, not {type(resource).__name__}")
    found = resource.get("resourceType")
    if found != resource_type:
        raise FhirLineError(f"resourceType {found!r} in a {resource_type} file")
    return resource


# ---------------------------------------------------------------------------- element helpers


def _obj(parent: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FhirLineError(f"{where}.{key} must be an object")
    return value


def _list(parent: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = parent.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise FhirLineError(f"{where}.{key} must be a list of objects")
    return value


def _ref(parent: Mapping[str, Any], key: str, where: str, *types: str) -> str | None:
    """The id of a literal reference `Type/id` (relative or absolute URL) of one of `types`."""
    reference = _obj(parent, key, where).get("reference")
    if reference is None:
        return None
    if not isinstance(reference, str):
        raise FhirLineError(f"{where}.{key}.reference must be a string")
    parts = reference.rstrip("/").split("/")
    if len(parts) < 2 or parts[-2] not in types or not parts[-1]:
        raise FhirLineError(f"{where}.{key}.reference {reference!r} is not a {' or '.join(types)} reference")
    return parts[-1]


def _coding(concept: Mapping[str, Any], system: str, where: str) -> Mapping[str, Any]:
    for coding in _list(concept, "coding", where):
        if coding.get("system") == system:
            return coding
    return {}


def _codings(concepts: list[Mapping[str, Any]], system: str, where: str) -> Mapping[str, Any]:
    for concept in concepts:
        coding = _coding(concept, system, where)
        if coding:
            return coding
    return {}


def _extension(resource: Mapping[str, Any], url: str, where: str) -> Any:
    for extension in _list(resource, "extension", where):
        if extension.get("url") == url:
            for key, value in extension.items():
                if key.startswith("value"):
                    return value
    return None


def _updated(resource: Mapping[str, Any], context: _Context, where: str) -> object:
    return context.time(_obj(resource, "meta", where).get("lastUpdated"))


# ------------------------------------------------------------------------------------ mappers

Row = dict[str, object]


def _organization(resource: Mapping[str, Any], context: _Context) -> tuple[str, Row]:
    types = _list(resource, "type", "Organization")
    kind = _codings(types, ORGANIZATION_TYPE_SYSTEM, "Organization.type").get("code")
    common = {"updated_at": _updated(resource, context, "Organization")}
    if kind == "prov":
        return "hospitals", common | {
            "hospital_id": resource.get("id"),
            "hospital_name": resource.get("name"),
            "campus_name": _extension(resource, EXT_CAMPUS_NAME, "Organization"),
            "level": _extension(resource, EXT_HOSPITAL_LEVEL, "Organization"),
            "consortium_role": _extension(resource, EXT_CONSORTIUM_ROLE, "Organization"),
        }
    if kind == "dept":
        return "departments", common | {
            "department_id": resource.get("id"),
            "hospital_id": _ref(resource, "partOf", "Organization", "Organization"),
            "department_name": resource.get("name"),
            "kind": _codings(types, DEPARTMENT_KIND_SYSTEM, "Organization.type").get("code"),
        }
    raise FhirLineError(f"Organization.type {kind!r} is neither a hospital (prov) nor a department (dept)")


def _identifier(resource: Mapping[str, Any], type_code: str, system: str) -> object:
    identifiers = _list(resource, "identifier", "Patient")
    for identifier in identifiers:
        if _coding(_obj(identifier, "type", "Patient.identifier"), IDENTIFIER_TYPE_SYSTEM,
                   "Patient.identifier.type").get("code") == type_code:
            return identifier.get("value")
    for identifier in identifiers:
        if identifier.get("system") == system:
            return identifier.get("value")
    return None


def _patient(resource: Mapping[str, Any], context: _Context) -> tuple[str, Row]:
    names = _list(resource, "name", "Patient")
    name = None
    if names:
        first = names[0]
        given = first.get("given") or []
        name = first.get("text") or ((first.get("family") or "") + "".join(str(g) for g in given)) or None
    phone = next((t.get("value") for t in _list(resource, "telecom", "Patient") if t.get("system") == "phone"),
                 None)
    gender = resource.get("gender")
    return "patients", {
        "patient_id": resource.get("id"),
        "patient_name": name,
        "national_id": _identifier(resource, "NI", NATIONAL_ID_SYSTEM),
        "phone": phone,
        "mrn": _identifier(resource, "MR", MRN_SYSTEM),
        "gender": GENDER_FROM_FHIR.get(gender, gender) if gender is not None else None,
        "birth_date": resource.get("birthDate"),
        "updated_at": _updated(resource, context, "Patient"),
    }


def _participant(resource: Mapping[str, Any], preferred_type: str | None) -> str | None:
    participants = _list(resource, "participant", "Encounter")
    if preferred_type:
        for participant in participants:
            for concept in _list(participant, "type", "Encounter.participant"):
                if _coding(concept, PARTICIPATION_TYPE_SYSTEM, "Encounter.participant.type").get("code") \
                        == preferred_type:
                    return _ref(participant, "individual", "Encounter.participant", "Practitioner",
                                "PractitionerRole")
    for participant in participants:
        found = _ref(participant, "individual", "Encounter.participant", "Practitioner", "PractitionerRole")
        if found:
            return found
    return None


def _encounter(resource: Mapping[str, Any], context: _Context) -> tuple[str, Row]:
    encounter_class = _obj(resource, "class", "Encounter").get("code")
    period = _obj(resource, "period", "Encounter")
    common = {
        "patient_id": _ref(resource, "subject", "Encounter", "Patient"),
        "department_id": _ref(resource, "serviceProvider", "Encounter", "Organization"),
        "updated_at": _updated(resource, context, "Encounter"),
    }
    if encounter_class in OUTPATIENT_CLASSES:
        visit_type = _codings(_list(resource, "type", "Encounter"), VISIT_TYPE_SYSTEM, "Encounter.type").get("code")
        if visit_type is None:  # a server without this project's visit types: the class says enough
            visit_type = "emergency" if encounter_class == "EMER" else "general"
        return "outpatient_visits", common | {
            "visit_id": resource.get("id"),
            "doctor_id": _participant(resource, None),
            "visit_at": context.time(period.get("start")),
            "visit_type": visit_type,
        }
    if encounter_class in INPATIENT_CLASSES:
        hospitalization = _obj(resource, "hospitalization", "Encounter")
        disposition = _coding(_obj(hospitalization, "dischargeDisposition", "Encounter.hospitalization"),
                              DISCHARGE_DISPOSITION_SYSTEM, "Encounter.hospitalization.dischargeDisposition")
        code = disposition.get("code")
        return "inpatient_stays", common | {
            "stay_id": resource.get("id"),
            "attending_doctor_id": _participant(resource, "ATND"),
            "admitted_at": context.time(period.get("start")),
            "discharged_at": context.time(period.get("end")),
            "discharge_disposition": DISPOSITION_FROM_FHIR.get(code, code) if code is not None else None,
            "planned_readmission": _extension(resource, EXT_PLANNED_READMISSION, "Encounter"),
        }
    raise FhirLineError(f"Encounter.class {encounter_class!r} is neither outpatient ({', '.join(OUTPATIENT_CLASSES)})"
                        f" nor inpatient ({', '.join(INPATIENT_CLASSES)})")


def _condition(resource: Mapping[str, Any], context: _Context) -> tuple[str, Row]:
    stay_id = _ref(resource, "encounter", "Condition", "Encounter")
    if stay_id is not None and context.encounter_classes.get(stay_id) in OUTPATIENT_CLASSES:
        raise FhirLineError(f"Condition of outpatient Encounter/{stay_id}: diagnoses are kept for stays only")
    code = _obj(resource, "code", "Condition")
    coding = _coding(code, ICD10_SYSTEM, "Condition.code")
    return "diagnoses", {
        "stay_id": stay_id,
        "seq_no": _extension(resource, EXT_DIAGNOSIS_SEQUENCE, "Condition"),
        "icd10_code": coding.get("code"),
        "diagnosis_name": coding.get("display") or code.get("text"),
        "is_primary": _extension(resource, EXT_PRIMARY_DIAGNOSIS, "Condition"),
        "is_complication": _extension(resource, EXT_COMPLICATION, "Condition"),
        "updated_at": _updated(resource, context, "Condition"),
    }


def _procedure(resource: Mapping[str, Any], context: _Context) -> tuple[str, Row]:
    coding = _coding(_obj(resource, "code", "Procedure"), ICD9CM_SYSTEM, "Procedure.code")
    performers = _list(resource, "performer", "Procedure")
    performed = resource.get("performedDateTime") or _obj(resource, "performedPeriod", "Procedure").get("start")
    return "surgeries", {
        "surgery_id": resource.get("id"),
        "stay_id": _ref(resource, "encounter", "Procedure", "Encounter"),
        "surgeon_id": _ref(performers[0], "actor", "Procedure.performer", "Practitioner", "PractitionerRole")
        if performers else None,
        "procedure_code": coding.get("code"),
        "procedure_name": coding.get("display"),
        "grade": _extension(resource, EXT_SURGERY_GRADE, "Procedure"),
        "minimally_invasive": _extension(resource, EXT_MINIMALLY_INVASIVE, "Procedure"),
        "performed_at": context.time(performed),
        "updated_at": _updated(resource, context, "Procedure"),
    }


def _charge_item(resource: Mapping[str, Any], context: _Context) -> tuple[str, Row]:
    encounter_id = _ref(resource, "context", "ChargeItem", "Encounter")
    if encounter_id is None:
        raise FhirLineError("ChargeItem.context is missing: a charge belongs to a visit or a stay")
    # The export's own Encounter wins; an incremental export may not hold it, hence the extension
    # this project's exporter adds (a charge cannot be placed without knowing visit from stay).
    encounter_class = context.encounter_classes.get(encounter_id) \
        or _extension(resource, EXT_ENCOUNTER_CLASS, "ChargeItem")
    if encounter_class in OUTPATIENT_CLASSES:
        visit_id, stay_id = encounter_id, None
    elif encounter_class in INPATIENT_CLASSES:
        visit_id, stay_id = None, encounter_id
    else:
        raise FhirLineError(f"ChargeItem.context Encounter/{encounter_id}: class {encounter_class!r} unknown, "
                            "cannot tell an outpatient visit from a stay")
    price = _obj(resource, "priceOverride", "ChargeItem")
    if price.get("currency") not in (None, "CNY"):
        raise FhirLineError(f"ChargeItem.priceOverride.currency {price.get('currency')!r} is not CNY")
    department = _ref(resource, "requestingOrganization", "ChargeItem", "Organization") \
        or _ref(resource, "performingOrganization", "ChargeItem", "Organization")
    occurred = resource.get("occurrenceDateTime") or _obj(resource, "occurrencePeriod", "ChargeItem").get("start")
    return "charges", {
        "charge_id": resource.get("id"),
        "visit_id": visit_id,
        "stay_id": stay_id,
        "department_id": department,
        "category": _coding(_obj(resource, "code", "ChargeItem"), CHARGE_CATEGORY_SYSTEM, "ChargeItem.code").get("code"),
        "amount_cny": price.get("value"),
        "charged_at": context.time(occurred),
        "updated_at": _updated(resource, context, "ChargeItem"),
    }


_MAPPERS: dict[str, Callable[[Mapping[str, Any], _Context], tuple[str, Row]]] = {
    "Organization": _organization,
    "Patient": _patient,
    "Encounter": _encounter,
    "Condition": _condition,
    "Procedure": _procedure,
    "ChargeItem": _charge_item,
}

