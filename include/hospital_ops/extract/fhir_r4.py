"""A real HL7 FHIR R4 export, read whole → the HIS landing files.

What a hospital's FHIR server (or Synthea, or a Bulk Data `$export`) hands over, in any of these forms,
mixed in one folder (sub-folders included):

- FHIR Bundles (`*.json`, `*.json.gz`) of type transaction, batch, collection, searchset (or any other:
  every `entry.resource` is read; a Bundle inside a Bundle is read too; `request.method = DELETE` entries
  carry no resource and are skipped), or a single resource as a JSON object;
- Bulk Data NDJSON (`*.ndjson`, `*.ndjson.gz`): one resource a line, any resource type in any file;
- a Bulk Data manifest (`manifest.json`, the object with `transactionTime` and `output`): its
  `transactionTime` stands for `meta.lastUpdated` where a resource has none.

Everything is mapped onto the entities of `hospital_ops.sources.his` (landing `<landing>/his/<date>/`,
the files the SQL extractor writes) and `hospital_ops.sources.his_fhir` (`<landing>/his_fhir/<date>/`,
what the SQL tables have no room for: every encounter by class, coded procedures and conditions,
amounts by currency):

| FHIR R4 | HIS entity | rule |
|---|---|---|
| Encounter | his_fhir encounters, and outpatient_visits or inpatient_stays | the category of its `class` code in the seed `his_fhir_encounter_classes` (outpatient, emergency → a visit; inpatient → a stay; other, or a class not in the seed → the encounter only) |
| Encounter.location / serviceProvider / participant's PractitionerRole | department_id | the seed `his_fhir_department_map` (match on a Location or Organization id, identifier or name, or a PractitionerRole specialty code); no match → the hospital's `UNMAPPED-<hospital>` department (未映射科室), counted in `his_fhir__encounters.department_mapped` |
| Encounter.serviceProvider (its `partOf` if it is a department) | hospitals | one hospital per providing Organization; level and consortium role from the seed `his_fhir_organizations` (`*` = default) |
| Encounter.hospitalization.dischargeDisposition, Patient.deceased[x] | discharge_disposition | the seed `his_fhir_discharge_dispositions` (system + code); a patient deceased during the stay → death |
| Patient | patients | id, identifiers (MR, NI/身份证, SS, …) as keyed hashes; names, telecoms and addresses dropped |
| Condition | his_fhir conditions; diagnoses when ICD-10 coded on a stay | code kept with its system |
| Procedure | his_fhir procedures; surgeries when on a stay and a surgery | surgery = (system, code) in the seed `his_fhir_surgery_procedures`, grade 手术分级 from it ("ungraded" when blank) |
| Claim, ExplanationOfBenefit, ChargeItem | his_fhir amounts; charges for a CNY ChargeItem | currency kept; only CNY becomes a HIS charge (category from `his_fhir_charge_categories`) |

References of every form resolve: relative (`Patient/1`), absolute (`https://x/fhir/Patient/1`),
versioned (`Patient/1/_history/3`), `urn:uuid:` through the Bundle's `fullUrl`, contained (`#id`),
conditional (`Patient?identifier=system|value`) and identifier-only (`{"identifier": {…}}`), by the
identifiers of the resources read. Timestamps with any offset are converted to the hospital's time zone
(`hospital_ops.config.hospital_timezone`); partial dates (`1980`, `1980-05`) are their first day.

Nothing personal leaves this module in clear: patient ids (Synthea's equal the medical-record number)
are replaced by the project's keyed hash (`load.parsing.pseudonymize`); the national ID and the
medical-record number are written to the `pii` columns of `his__patients`, which `LandingFolder` hashes
with the same key before a file is written (`<name>_pseudo`, taken as it is by the loader), so a
patient's pseudonyms equal those the SQL extractor gives the same identifiers and cross-source joins
(a referral matched by national ID) hold; names, telecoms and addresses are not written at all.
Resources of other types (Observation, Immunization, …) are counted and skipped.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import json
import logging
import re
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, tzinfo
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote

from hospital_ops.extract import LandingFolder, landing_text
from hospital_ops.extract import fhir_profile as profile
from hospital_ops.load.files import SourceFileError
from hospital_ops.load.parsing import pseudonymize
from hospital_ops.sources.his import SOURCE as HIS_SOURCE
from hospital_ops.sources.his_fhir import SOURCE as FHIR_SOURCE
from hospital_ops.sources.spec import Entity

log = logging.getLogger(__name__)

MAPPED_TYPES = ("Patient", "Encounter", "Condition", "Procedure", "Claim", "ExplanationOfBenefit", "ChargeItem")
REFERENCE_TYPES = ("Organization", "Location", "PractitionerRole", "Practitioner")
ICD10_SYSTEMS = (profile.ICD10_SYSTEM, "http://hl7.org/fhir/sid/icd-10-cm", "http://hl7.org/fhir/sid/icd-10-cn")
UNMAPPED_PREFIX = "UNMAPPED-"
UNKNOWN_HOSPITAL = "UNKNOWN"
SKIPPED_STATUSES = ("entered-in-error",)  # a resource the source itself withdrew
_SEEDS = Path(__file__).resolve().parents[3] / "dbt_project" / "seeds"
_CJK = re.compile(r"[\u4e00-\u9fff]")
_PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2}))?$")


# ------------------------------------------------------------------------------------- seeds


@dataclass(frozen=True)
class FhirSeeds:
    """The hospital-editable mappings (dbt seeds, so BI and auditors see the same tables)."""

    encounter_classes: dict[str, str]  # class code -> outpatient | emergency | inpatient | other
    departments: list[dict[str, str]]
    organizations: list[dict[str, str]]
    surgeries: dict[tuple[str, str], dict[str, str]]  # (system, code) -> row
    dispositions: dict[tuple[str, str], str]
    charge_categories: dict[tuple[str, str], str]

    @classmethod
    def load(cls, folder: Path = _SEEDS) -> FhirSeeds:
        def rows(name: str) -> list[dict[str, str]]:
            with (folder / f"{name}.csv").open(encoding="utf-8", newline="") as handle:
                return [{k: (v or "").strip() for k, v in row.items()} for row in csv.DictReader(handle)]

        return cls(
            encounter_classes={r["class_code"]: r["category"] for r in rows("his_fhir_encounter_classes")},
            departments=rows("his_fhir_department_map"),
            organizations=rows("his_fhir_organizations"),
            surgeries={(r["code_system"], r["code"]): r for r in rows("his_fhir_surgery_procedures")},
            dispositions={(r["code_system"], r["code"]): r["disposition"]
                          for r in rows("his_fhir_discharge_dispositions")},
            charge_categories={(r["code_system"], r["code"]): r["category"]
                               for r in rows("his_fhir_charge_categories")},
        )


# ------------------------------------------------------------------------------------ reading


@dataclass
class Found:
    resource: dict[str, Any]
    full_url: str | None
    where: str  # file[:line] or file#entry, for messages
    path: Path | None = None  # the file it came from


@dataclass
class FhirRead:
    """What a folder held: resources by type, those skipped, lines that were not FHIR."""

    by_type: Counter = field(default_factory=Counter)
    skipped_types: Counter = field(default_factory=Counter)
    withdrawn: int = 0
    malformed: list[str] = field(default_factory=list)  # "file:line: reason"
    transaction_time: str | None = None


def _open_text(path: Path) -> IO[str]:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig")
    return path.open("r", encoding="utf-8-sig")


def export_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise SourceFileError(f"{folder}: FHIR export folder not found")
    suffixes = (".json", ".json.gz", ".ndjson", ".ndjson.gz")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name.endswith(suffixes)
                  and not p.name.startswith((".", "_")))


def _bundle_entries(bundle: Mapping[str, Any], where: str, path: Path | None = None) -> Iterator[Found]:
    for position, entry in enumerate(bundle.get("entry") or [], start=1):
        if not isinstance(entry, dict):
            continue
        resource = entry.get("resource")
        if not isinstance(resource, dict):  # a DELETE, or a search entry without a resource
            continue
        here = f"{where}#entry{position}"
        if resource.get("resourceType") == "Bundle":
            yield from _bundle_entries(resource, here, path)
        else:
            yield Found(resource, entry.get("fullUrl"), here, path)


def read_export(folder: Path, read: FhirRead, paths: list[Path] | None = None) -> Iterator[Found]:
    """Every resource in the folder's files (or in `paths` of them), Bundles unpacked, in file order,
    one at a time: a file is never held whole (an NDJSON line, or one Bundle document, at a time)."""
    for path in export_files(folder) if paths is None else paths:
        name = str(path.relative_to(folder))
        try:
            if ".ndjson" in path.name:
                with _open_text(path) as handle:
                    for number, line in enumerate(handle, start=1):
                        if not line.strip():
                            continue
                        try:
                            resource = json.loads(line, parse_float=Decimal)
                        except ValueError as exc:
                            read.malformed.append(f"{name}:{number}: invalid JSON ({exc})")
                            continue
                        if not isinstance(resource, dict) or "resourceType" not in resource:
                            read.malformed.append(f"{name}:{number}: not a FHIR resource")
                            continue
                        if resource["resourceType"] == "Bundle":
                            yield from _bundle_entries(resource, f"{name}:{number}", path)
                        else:
                            yield Found(resource, None, f"{name}:{number}", path)
                continue
            with _open_text(path) as handle:
                try:
                    document = json.load(handle, parse_float=Decimal)
                except ValueError as exc:
                    read.malformed.append(f"{name}: invalid JSON ({exc})")
                    continue
        except (OSError, UnicodeDecodeError, EOFError) as exc:
            raise SourceFileError(f"{path}: cannot be read as UTF-8 FHIR JSON ({exc})") from exc
        if not isinstance(document, dict):
            read.malformed.append(f"{name}: not a JSON object")
        elif "transactionTime" in document and "output" in document:  # a Bulk Data manifest
            read.transaction_time = str(document["transactionTime"])
        elif document.get("resourceType") == "Bundle":
            yield from _bundle_entries(document, name, path)
        elif "resourceType" in document:
            yield Found(document, None, name, path)
        else:
            read.malformed.append(f"{name}: not a FHIR resource or Bundle")


# --------------------------------------------------------------------------------- references


def _strip_history(reference: str) -> str:
    return re.sub(r"/_history/[^/]+/?$", "", reference)


def resource_id(found: Found) -> str:
    """A resource's id: its `id`, else its Bundle fullUrl's last part, else a stable hash of its content."""
    resource = found.resource
    rid = resource.get("id")
    if not rid and found.full_url:
        rid = _strip_history(found.full_url).rstrip("/").split("/")[-1].split(":")[-1]
    if not rid:  # a resource without id: a stable key from its content
        rid = "sha-" + hashlib.sha256(json.dumps(resource, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return str(rid)


IDENTIFIED_TYPES = ("Patient", "Encounter", "Condition", *REFERENCE_TYPES)  # what a reference may name by identifier


@dataclass
class Index:
    """What resolving a reference of any form needs, and nothing more: the few reference resources
    (Organization, Location, PractitionerRole, Practitioner) whole; for the clinical resources only the
    small maps: a Bundle fullUrl that is not `…/<id>` or `urn:uuid:<id>`, the identifiers of the types a
    reference may name by identifier, and the death date of deceased patients. An export of a million
    resources is therefore never held in memory (`fhir_export_to_landing` streams it)."""

    resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    by_url: dict[str, tuple[str, str]] = field(default_factory=dict)
    by_identifier: dict[tuple[str, str, str], str] = field(default_factory=dict)
    roles_of_practitioner: dict[str, list[str]] = field(default_factory=dict)
    deceased: dict[str, str] = field(default_factory=dict)  # Patient id -> deceasedDateTime

    def add(self, found: Found) -> tuple[str, str]:
        resource = found.resource
        rtype = str(resource["resourceType"])
        rid = resource_id(found)
        key = (rtype, rid)
        kept = rtype in REFERENCE_TYPES or rtype not in MAPPED_TYPES
        if kept:
            self.resources[key] = resource
        if found.full_url:
            plain = _strip_history(found.full_url)
            if kept or plain.rstrip("/").split("/")[-1].split(":")[-1] != rid:  # else resolved from the URL itself
                self.by_url[found.full_url] = key
                self.by_url[plain] = key
        if rtype in IDENTIFIED_TYPES:
            for identifier in resource.get("identifier") or []:
                if isinstance(identifier, dict) and identifier.get("value") is not None:
                    self.by_identifier[(rtype, str(identifier.get("system") or ""), str(identifier["value"]))] = rid
        if rtype == "Patient" and isinstance(resource.get("deceasedDateTime"), str):
            self.deceased[rid] = resource["deceasedDateTime"]
        return key

    def finish(self) -> None:
        for (rtype, rid), resource in self.resources.items():
            if rtype == "PractitionerRole":
                practitioner = self.resolve(resource.get("practitioner"), resource, ("Practitioner",))
                if practitioner:
                    self.roles_of_practitioner.setdefault(practitioner[1], []).append(rid)

    def resolve(self, ref: object, container: Mapping[str, Any] | None,
                types: tuple[str, ...]) -> tuple[str, str] | None:
        """(type, id) of a Reference; the id in the reference when its target is not in the export."""
        if not isinstance(ref, dict):
            return None
        default_type = str(ref.get("type") or (types[0] if len(types) == 1 else ""))
        reference = ref.get("reference")
        if isinstance(reference, str) and reference:
            if reference.startswith("#"):  # contained, in the resource that refers
                for contained in (container or {}).get("contained") or []:
                    if isinstance(contained, dict) and contained.get("id") == reference[1:]:
                        return str(contained.get("resourceType")), f"{(container or {}).get('id')}{reference}"
                return None
            if reference in self.by_url:
                return self.by_url[reference]
            plain = _strip_history(reference)
            if plain in self.by_url:
                return self.by_url[plain]
            if "?" in plain:  # conditional: Type?identifier=system|value
                rtype, _, query = plain.partition("?")
                rtype = rtype.rstrip("/").split("/")[-1] or default_type
                for part in query.split("&"):
                    name, _, value = part.partition("=")
                    if name == "identifier":
                        system, _, code = unquote(value).rpartition("|")
                        found = self._by_identifier(rtype, system, code)
                        if found:
                            return found
                return (rtype, plain) if rtype else None
            if plain.startswith(("urn:uuid:", "urn:oid:")):
                rid = plain.split(":")[-1]
                for rtype in types or (default_type,):
                    if (rtype, rid) in self.resources:
                        return rtype, rid
                return (default_type, rid) if default_type else None
            parts = plain.rstrip("/").split("/")
            if len(parts) >= 2:
                return parts[-2], parts[-1]
            return (default_type, parts[-1]) if default_type else None
        identifier = ref.get("identifier")
        if isinstance(identifier, dict) and identifier.get("value") is not None:
            system, value = str(identifier.get("system") or ""), str(identifier["value"])
            found = self._by_identifier(default_type, system, value)
            if found:
                return found
            return (default_type, f"{system}|{value}") if default_type else None
        return None

    def _by_identifier(self, rtype: str, system: str, value: str) -> tuple[str, str] | None:
        candidates = [rtype] if rtype else [*MAPPED_TYPES, *REFERENCE_TYPES]
        for candidate in candidates:
            rid = self.by_identifier.get((candidate, system, value))
            if rid is None and not system:
                rid = next((r for (t, _, v), r in self.by_identifier.items() if t == candidate and v == value), None)
            if rid is not None:
                return candidate, rid
        return None

    def get(self, key: tuple[str, str] | None) -> dict[str, Any] | None:
        return self.resources.get(key) if key else None


# ------------------------------------------------------------------------------------- values


def hospital_time(text: object, tz: tzinfo) -> datetime | None:
    """A FHIR instant/dateTime/date in hospital local time (naive); partial dates are their first day."""
    if not isinstance(text, str) or not text.strip():
        return None
    text = text.strip()
    match = _PARTIAL_DATE.match(text)
    if match:
        return datetime(int(match.group(1)), int(match.group(2) or 1), 1)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(tz).replace(tzinfo=None)
    return value.replace(microsecond=0)


def _codings(concept: object) -> list[dict[str, Any]]:
    if isinstance(concept, dict):
        if "code" in concept and "coding" not in concept:  # a bare Coding (Encounter.class in R4)
            return [concept]
        return [c for c in concept.get("coding") or [] if isinstance(c, dict)]
    if isinstance(concept, list):
        return [c for item in concept for c in _codings(item)]
    return []


def _first_coding(concept: object) -> dict[str, Any]:
    codings = _codings(concept)
    return codings[0] if codings else {}


def _extension(resource: Mapping[str, Any], url: str) -> Any:
    for extension in resource.get("extension") or []:
        if isinstance(extension, dict) and extension.get("url") == url:
            for key, value in extension.items():
                if key.startswith("value"):
                    return value
    return None


def _money(value: object) -> tuple[Decimal, str] | None:
    if not isinstance(value, dict) or value.get("value") is None:
        return None
    try:
        amount = Decimal(str(value["value"]))
    except InvalidOperation:
        return None
    return amount, str(value.get("currency") or "")


def _period(resource: Mapping[str, Any], prefix: str) -> object:
    value = resource.get(f"{prefix}DateTime") or resource.get(f"{prefix}Instant")
    if value is None and isinstance(resource.get(f"{prefix}Period"), dict):
        value = resource[f"{prefix}Period"].get("start")
    return value


# ------------------------------------------------------------------------------------ mapping


@dataclass
class FhirLanding:
    his_folder: Path
    fhir_folder: Path
    his_paths: list[Path]
    fhir_paths: list[Path]
    rows: dict[str, int]
    read: FhirRead
    unmapped_encounters: int = 0


@dataclass(frozen=True)
class _Diagnosis:
    """An ICD-10 coded Condition of an inpatient stay, kept (small) until every one of its stay's is read."""

    onset: datetime
    condition_id: str
    coding: dict[str, Any]
    sequence: object
    primary: object
    complication: object
    updated: datetime


class _Mapper:
    """Maps one resource at a time and writes its rows at once (`put` → the landing folders)."""

    def __init__(self, index: Index, seeds: FhirSeeds, key: bytes, tz: tzinfo, updated_default: datetime,
                 folders: Mapping[str, LandingFolder]) -> None:
        self.index, self.seeds, self.key, self.tz = index, seeds, key, tz
        self.updated_default = updated_default
        self.folders = folders  # source name -> its night's landing folder
        self.hospitals: dict[str, dict[str, object]] = {}
        self.departments: dict[str, dict[str, object]] = {}
        # the small per-encounter maps later resources need: category and department, and the
        # ranks an inpatient Encounter.diagnosis gives its conditions
        self.encounter_category: dict[str, str] = {}
        self.encounter_department: dict[str, tuple[str, str]] = {}
        self.diagnosis_ranks: dict[str, dict[str, int]] = {}
        self.stay_diagnoses: dict[str, list[_Diagnosis]] = {}
        self.unmapped = 0

    # -- helpers
    def time(self, text: object) -> datetime | None:
        return hospital_time(text, self.tz)

    def updated(self, resource: Mapping[str, Any]) -> datetime:
        meta = m if isinstance(m := resource.get("meta"), dict) else {}
        return self.time(meta.get("lastUpdated")) or self.updated_default

    def patient_key(self, ref: object, container: Mapping[str, Any]) -> str | None:
        found = self.index.resolve(ref, container, ("Patient",))
        return pseudonymize(f"Patient/{found[1]}", self.key) if found else None

    def encounter_id(self, ref: object, container: Mapping[str, Any]) -> str | None:
        if isinstance(ref, list):
            ref = ref[0] if ref else None
        found = self.index.resolve(ref, container, ("Encounter",))
        return found[1] if found else None

    def category_of(self, encounter_id: str | None, resource: Mapping[str, Any]) -> str | None:
        """The category of the encounter a resource belongs to: from the export's Encounters, else (its
        Encounter did not change, so an incremental export left it out) from this project's profile
        extension naming the encounter's class on the resource itself."""
        if not encounter_id:
            return None
        category = self.encounter_category.get(encounter_id)
        klass = _extension(resource, profile.EXT_ENCOUNTER_CLASS)
        if category is None and klass:
            category = self.seeds.encounter_classes.get(str(klass), "other")
        return category

    def put(self, entity: Entity, key: str, row: dict[str, object]) -> None:
        """Write one landing row now (`key` names it in messages; staging keeps the latest per key)."""
        self.folders[entity.source].write(entity, [_text(row.get(column.name)) for column in entity.columns])

    # -- organisation
    def _seed_match(self, rows: list[dict[str, str]], match_on: str, resource: Mapping[str, Any] | None,
                    rid: str | None) -> dict[str, str] | None:
        candidates: list[tuple[str, str]] = []
        if rid:
            candidates.append(("", rid))
        if resource:
            candidates += [(str(i.get("system") or ""), str(i.get("value"))) for i in resource.get("identifier") or []
                           if isinstance(i, dict) and i.get("value") is not None]
            if resource.get("name"):
                candidates.append(("", str(resource["name"])))
        for row in rows:
            if row.get("match_on", match_on) != match_on:
                continue
            for system, value in candidates:
                if row["match_value"] == value and (not row.get("match_system") or row["match_system"] == system):
                    return row
        return None

    def hospital(self, org_key: tuple[str, str] | None) -> str:
        org = self.index.get(org_key)
        if org is not None and "dept" in {c.get("code") for c in _codings(org.get("type"))} and org.get("partOf"):
            org_key = self.index.resolve(org.get("partOf"), org, ("Organization",))
            org = self.index.get(org_key)
        hospital_id = org_key[1] if org_key else UNKNOWN_HOSPITAL
        if hospital_id not in self.hospitals:
            settings = self._seed_match(self.seeds.organizations, "", org, hospital_id) or next(
                (r for r in self.seeds.organizations if r["match_value"] == "*"), {})
            name = str((org or {}).get("name") or hospital_id)
            self.hospitals[hospital_id] = {
                "hospital_id": hospital_id,
                "hospital_name": name,
                "campus_name": _extension(org or {}, profile.EXT_CAMPUS_NAME) or name,
                "level": _extension(org or {}, profile.EXT_HOSPITAL_LEVEL) or settings.get("level"),
                "consortium_role": _extension(org or {}, profile.EXT_CONSORTIUM_ROLE) or settings.get("consortium_role"),
                "updated_at": self.updated(org or {}),
            }
        return hospital_id

    def department(self, encounter: Mapping[str, Any], hospital_id: str) -> tuple[str, bool]:
        """The encounter's department by the seed: its location, its provider, its performer's specialty."""
        rows = self.seeds.departments
        match: dict[str, str] | None = None
        for item in encounter.get("location") or []:
            if isinstance(item, dict):
                key = self.index.resolve(item.get("location"), encounter, ("Location",))
                match = match or self._seed_match(rows, "location", self.index.get(key), key[1] if key else None)
        provider_key = self.index.resolve(encounter.get("serviceProvider"), encounter, ("Organization",))
        provider = self.index.get(provider_key)
        if match is None and provider_key:
            match = self._seed_match(rows, "organization", provider, provider_key[1])
        if match is None:
            for participant in encounter.get("participant") or []:
                if not isinstance(participant, dict):
                    continue
                key = self.index.resolve(participant.get("individual"), encounter, ("Practitioner", "PractitionerRole"))
                if not key:
                    continue
                roles = [key[1]] if key[0] == "PractitionerRole" else self.index.roles_of_practitioner.get(key[1], [])
                for role_id in roles:
                    role = self.index.get(("PractitionerRole", role_id)) or {}
                    for coding in _codings(role.get("specialty")):
                        for row in rows:
                            if row["match_on"] == "specialty" and row["match_value"] == str(coding.get("code")) and \
                                    (not row["match_system"] or row["match_system"] == coding.get("system")):
                                match = match or row
        if match is not None:
            department_id = match["department_id"]
            if department_id not in self.departments:
                self.departments[department_id] = {
                    "department_id": department_id, "hospital_id": hospital_id,
                    "department_name": f"{match['department_name_zh']} {match['department_name']}".strip(),
                    "kind": match.get("kind") or "clinical", "updated_at": self.updated_default}
            return department_id, True
        if provider_key and provider is not None and "dept" in {c.get("code") for c in _codings(provider.get("type"))}:
            # this project's own profile: the provider is the department Organization itself
            department_id = provider_key[1]
            if department_id not in self.departments:
                kind = next((c.get("code") for c in _codings(provider.get("type"))
                             if c.get("system") == profile.DEPARTMENT_KIND_SYSTEM), None)
                self.departments[department_id] = {
                    "department_id": department_id, "hospital_id": hospital_id,
                    "department_name": provider.get("name") or department_id, "kind": kind or "clinical",
                    "updated_at": self.updated(provider)}
            return department_id, True
        department_id = f"{UNMAPPED_PREFIX}{hospital_id}"
        if department_id not in self.departments:
            self.departments[department_id] = {
                "department_id": department_id, "hospital_id": hospital_id,
                "department_name": "未映射科室 unmapped", "kind": "clinical", "updated_at": self.updated_default}
        self.unmapped += 1
        return department_id, False

    # -- resources
    def patient(self, rid: str, resource: Mapping[str, Any]) -> None:
        identifiers = [i for i in resource.get("identifier") or [] if isinstance(i, dict) and i.get("value")]

        def by_type(code: str, system: str | None = None) -> str | None:
            for identifier in identifiers:
                codes = {c.get("code") for c in _codings(identifier.get("type"))}
                if code in codes or (system and identifier.get("system") == system):
                    # the clear value stays in memory: LandingFolder writes its pseudonym (hmac of the
                    # value alone, as the SQL extractor's national_id / mrn)
                    return str(identifier["value"])
            return None

        patient_id = pseudonymize(f"Patient/{rid}", self.key)
        birth = self.time(resource.get("birthDate"))
        gender = resource.get("gender")
        self.put(HIS_SOURCE.entity("patients"), patient_id, {
            "patient_id": patient_id,
            "patient_name": None, "phone": None,  # dropped in the extractor, never written
            "national_id": by_type("NI", profile.NATIONAL_ID_SYSTEM),
            # no MR identifier: the patient's id is its record number, in clear here like any identifier
            # (LandingFolder hashes it once, as the SQL extractor's mrn; not the patient_id pseudonym again)
            "mrn": by_type("MR", profile.MRN_SYSTEM) or rid,
            "gender": profile.GENDER_FROM_FHIR.get(gender, "0") if gender else "0",
            "birth_date": birth.date() if birth else None,
            "updated_at": self.updated(resource),
        })

    def encounter(self, rid: str, resource: Mapping[str, Any]) -> None:
        klass = _first_coding(resource.get("class"))
        class_code = str(klass.get("code") or "")
        category = self.seeds.encounter_classes.get(class_code, "other")
        patient_ref = resource.get("subject") or resource.get("patient")
        patient_id = self.patient_key(patient_ref, resource)
        hospital_id = self.hospital(self.index.resolve(resource.get("serviceProvider"), resource, ("Organization",)))
        department_id, mapped = self.department(resource, hospital_id)
        self.encounter_department[rid] = (sys.intern(hospital_id), sys.intern(department_id))
        self.encounter_category[rid] = sys.intern(category)
        period_value = resource.get("period")
        period = period_value if isinstance(period_value, dict) else {}
        started, ended = self.time(period.get("start")), self.time(period.get("end"))
        disposition = self.disposition(resource, patient_ref, started, ended)
        doctor = None
        for participant in resource.get("participant") or []:
            if isinstance(participant, dict):
                found = self.index.resolve(participant.get("individual"), resource, ("Practitioner", "PractitionerRole"))
                if found:
                    doctor = doctor or found[1]
        updated = self.updated(resource)
        self.put(FHIR_SOURCE.entity("encounters"), rid, {
            "encounter_id": rid, "patient_id": patient_id, "class_system": klass.get("system"),
            "class_code": class_code or None, "category": category, "status": resource.get("status"),
            "hospital_id": hospital_id, "department_id": department_id, "department_mapped": mapped,
            "started_at": started, "ended_at": ended, "discharge_disposition": disposition, "updated_at": updated})
        if category in ("outpatient", "emergency"):
            visit_type = next((c.get("code") for c in _codings(resource.get("type"))
                               if c.get("system") == profile.VISIT_TYPE_SYSTEM), None)
            self.put(HIS_SOURCE.entity("outpatient_visits"), rid, {
                "visit_id": rid, "patient_id": patient_id, "department_id": department_id, "doctor_id": doctor,
                "visit_at": started, "visit_type": visit_type or ("emergency" if category == "emergency" else "general"),
                "updated_at": updated})
        elif category == "inpatient":
            ranks: dict[str, int] = {}
            for diagnosis in resource.get("diagnosis") or []:
                if isinstance(diagnosis, dict) and isinstance(diagnosis.get("rank"), int):
                    found = self.index.resolve(diagnosis.get("condition"), resource, ("Condition",))
                    if found:
                        ranks[found[1]] = diagnosis["rank"]
            if ranks:
                self.diagnosis_ranks[rid] = ranks
            self.put(HIS_SOURCE.entity("inpatient_stays"), rid, {
                "stay_id": rid, "patient_id": patient_id, "department_id": department_id,
                "attending_doctor_id": doctor, "admitted_at": started,
                "discharged_at": ended if resource.get("status") not in ("in-progress", "arrived") else None,
                "discharge_disposition": disposition,
                "planned_readmission": _extension(resource, profile.EXT_PLANNED_READMISSION),
                "updated_at": updated})

    def disposition(self, encounter: Mapping[str, Any], patient_ref: object, started: datetime | None,
                    ended: datetime | None) -> str | None:
        hospitalization = h if isinstance(h := encounter.get("hospitalization"), dict) else {}
        for coding in _codings(hospitalization.get("dischargeDisposition")):
            found = self.seeds.dispositions.get((str(coding.get("system") or ""), str(coding.get("code"))))
            if found:
                return found
        patient = self.index.resolve(patient_ref, encounter, ("Patient",))
        died = self.time(self.index.deceased.get(patient[1])) if patient else None
        if died is not None and started is not None and started.date() <= died.date() \
                and (ended is None or died.date() <= ended.date()):
            return "death"  # Patient.deceasedDateTime falls within the stay
        return None

    def condition(self, rid: str, resource: Mapping[str, Any]) -> None:
        codings = _codings(resource.get("code"))
        first = codings[0] if codings else {}
        encounter_id = self.encounter_id(resource.get("encounter") or resource.get("context"), resource)
        self.put(FHIR_SOURCE.entity("conditions"), rid, {
            "condition_id": rid, "encounter_id": encounter_id,
            "patient_id": self.patient_key(resource.get("subject") or resource.get("patient"), resource),
            "code_system": first.get("system"), "code": first.get("code"),
            "display": first.get("display") or (resource.get("code") or {}).get("text"),
            "onset_at": self.time(_period(resource, "onset") or resource.get("recordedDate")),
            "updated_at": self.updated(resource)})

    def diagnosis(self, rid: str, resource: Mapping[str, Any]) -> None:
        """Keep an ICD-10 coded condition of a stay until all are read (`diagnoses` numbers them)."""
        encounter_id = self.encounter_id(resource.get("encounter") or resource.get("context"), resource)
        if encounter_id is None or self.category_of(encounter_id, resource) != "inpatient":
            return
        coding = next((c for c in _codings(resource.get("code")) if c.get("system") in ICD10_SYSTEMS), None)
        if coding is None:
            return
        onset = self.time(_period(resource, "onset") or resource.get("recordedDate")) or datetime.min
        self.stay_diagnoses.setdefault(encounter_id, []).append(_Diagnosis(
            onset, rid, {"code": coding.get("code"), "display": coding.get("display")},
            _extension(resource, profile.EXT_DIAGNOSIS_SEQUENCE), _extension(resource, profile.EXT_PRIMARY_DIAGNOSIS),
            _extension(resource, profile.EXT_COMPLICATION), self.updated(resource)))

    def diagnoses(self) -> None:
        """ICD-10 coded conditions of stays → diagnoses, numbered per stay (primary: rank 1 or first)."""
        for stay_id, items in self.stay_diagnoses.items():
            ranked = self.diagnosis_ranks.get(stay_id, {})
            items.sort(key=lambda item: (item.sequence or ranked.get(item.condition_id, 99), item.onset,
                                         item.condition_id))
            for seq, item in enumerate(items, start=1):
                primary = item.primary
                if primary is None:
                    primary = ranked.get(item.condition_id) == 1 if ranked else seq == 1
                self.put(HIS_SOURCE.entity("diagnoses"), f"{stay_id}|{seq}", {
                    "stay_id": stay_id, "seq_no": item.sequence or seq,
                    "icd10_code": item.coding["code"], "diagnosis_name": item.coding["display"],
                    "is_primary": bool(primary), "is_complication": bool(item.complication),
                    "updated_at": item.updated})

    def procedure(self, rid: str, resource: Mapping[str, Any]) -> None:
        codings = _codings(resource.get("code"))
        seed, coding = None, codings[0] if codings else {}
        for candidate in codings:
            seed = self.seeds.surgeries.get((str(candidate.get("system") or ""), str(candidate.get("code"))))
            if seed:
                coding = candidate
                break
        extension_grade = _extension(resource, profile.EXT_SURGERY_GRADE)
        is_surgery = seed is not None or extension_grade is not None
        grade = str(extension_grade) if extension_grade is not None else (seed or {}).get("grade") or None
        encounter_id = self.encounter_id(resource.get("encounter") or resource.get("context"), resource)
        performed = self.time(_period(resource, "performed"))
        updated = self.updated(resource)
        self.put(FHIR_SOURCE.entity("procedures"), rid, {
            "procedure_id": rid, "encounter_id": encounter_id,
            "patient_id": self.patient_key(resource.get("subject") or resource.get("patient"), resource),
            "code_system": coding.get("system"), "code": coding.get("code"),
            "display": coding.get("display") or (resource.get("code") or {}).get("text"),
            "status": resource.get("status"), "is_surgery": is_surgery,
            "grade": (grade or "ungraded") if is_surgery else None, "performed_at": performed, "updated_at": updated})
        if is_surgery and encounter_id and self.category_of(encounter_id, resource) == "inpatient" \
                and resource.get("status") not in ("not-done", "entered-in-error"):
            invasive = _extension(resource, profile.EXT_MINIMALLY_INVASIVE)
            if invasive is None:
                invasive = (seed or {}).get("minimally_invasive") == "true"
            performer = next((p for p in resource.get("performer") or [] if isinstance(p, dict)), {})
            surgeon = self.index.resolve(performer.get("actor"), resource, ("Practitioner", "PractitionerRole"))
            name = (seed or {}).get("procedure_name_zh")
            self.put(HIS_SOURCE.entity("surgeries"), rid, {
                "surgery_id": rid, "stay_id": encounter_id, "surgeon_id": surgeon[1] if surgeon else None,
                "procedure_code": coding.get("code"),
                # the seed's Chinese name beside an English display; a display already in Chinese as it is
                "procedure_name": f"{name} {coding.get('display') or ''}".strip()
                if name and not _CJK.search(str(coding.get("display") or "")) else coding.get("display") or name,
                "grade": grade, "minimally_invasive": bool(invasive), "performed_at": performed,
                "updated_at": updated})

    def amount(self, resource_type: str, rid: str, resource: Mapping[str, Any], kind: str, money: tuple[Decimal, str],
               encounter_id: str | None, occurred: object) -> None:
        amount, currency = money
        amount_id = f"{resource_type}/{rid}/{kind}/{currency or 'none'}"
        self.put(FHIR_SOURCE.entity("amounts"), amount_id, {
            "amount_id": amount_id, "resource_type": resource_type, "resource_id": rid, "encounter_id": encounter_id,
            "patient_id": self.patient_key(resource.get("patient") or resource.get("subject"), resource),
            "kind": kind, "amount": amount, "currency": currency or None, "occurred_at": self.time(occurred),
            "updated_at": self.updated(resource)})

    def claim(self, resource_type: str, rid: str, resource: Mapping[str, Any]) -> None:
        items = [i for i in resource.get("item") or [] if isinstance(i, dict)]
        encounter_id = next((self.encounter_id(i.get("encounter"), resource) for i in items if i.get("encounter")), None)
        occurred = (resource.get("billablePeriod") or {}).get("start") or resource.get("created")
        prefix = "claim" if resource_type == "Claim" else "eob"
        totals = resource.get("total")
        if isinstance(totals, dict):  # Claim.total is one Money
            money = _money(totals)
            if money:
                self.amount(resource_type, rid, resource, f"{prefix}_total", money, encounter_id, occurred)
        elif isinstance(totals, list):  # ExplanationOfBenefit.total: one per adjudication category
            for total in totals:
                money = _money((total or {}).get("amount"))
                category = _first_coding((total or {}).get("category")).get("code") or "total"
                if money:
                    self.amount(resource_type, rid, resource, f"{prefix}_{category}", money, encounter_id, occurred)
        if totals is None and resource_type == "Claim":  # no total: the sum of the items' net, per currency
            sums: dict[str, Decimal] = {}
            for item in items:
                money = _money(item.get("net"))
                if money:
                    sums[money[1]] = sums.get(money[1], Decimal(0)) + money[0]
            for currency, value in sums.items():
                self.amount(resource_type, rid, resource, "claim_items_net", (value, currency), encounter_id, occurred)
        payment = _money((resource.get("payment") or {}).get("amount")) if isinstance(resource.get("payment"), dict) \
            else None
        if payment:
            self.amount(resource_type, rid, resource, f"{prefix}_payment", payment, encounter_id, occurred)

    def charge_item(self, rid: str, resource: Mapping[str, Any]) -> None:
        encounter_id = self.encounter_id(resource.get("context"), resource)
        occurred = _period(resource, "occurrence") or resource.get("enteredDate")
        money = _money(resource.get("priceOverride"))
        if money is None:  # R5-style totalPriceComponent, the base component
            money = next((_money(c.get("amount")) for c in resource.get("totalPriceComponent") or []
                          if isinstance(c, dict) and _money(c.get("amount"))), None)
        if money is None:
            return
        self.amount("ChargeItem", rid, resource, "charge_item", money, encounter_id, occurred)
        category_seed = None
        for coding in _codings(resource.get("code")):
            category_seed = category_seed or self.seeds.charge_categories.get(
                (str(coding.get("system") or ""), str(coding.get("code"))))
        category = category_seed or self.seeds.charge_categories.get(("*", "*"))
        encounter_category = self.category_of(encounter_id, resource)
        department = self.encounter_department.get(encounter_id or "")
        if department is None and encounter_category is not None:
            # its Encounter is not in this (incremental) export: the profile's requesting department
            requester = self.index.resolve(resource.get("requestingOrganization"), resource, ("Organization",))
            department = ("", requester[1]) if requester else None
        if money[1] != "CNY" or encounter_category not in ("outpatient", "emergency", "inpatient") or not department:
            return  # shown in his_fhir__amounts with its currency; the ledger's CNY figures take CNY only
        _, department_id = department
        visit = encounter_category != "inpatient"
        self.put(HIS_SOURCE.entity("charges"), rid, {
            "charge_id": rid, "visit_id": encounter_id if visit else None,
            "stay_id": None if visit else encounter_id, "department_id": department_id, "category": category,
            "amount_cny": money[0], "charged_at": self.time(occurred), "updated_at": self.updated(resource)})


def fhir_export_to_landing(
    export_dir: Path,
    landing_dir: Path,
    business_date: date,
    *,
    key: bytes,
    tz: tzinfo,
    seeds: FhirSeeds | None = None,
    transaction_time: str | None = None,
) -> FhirLanding:
    """Read every resource in `export_dir` and write the night's HIS and HIS-FHIR landing folders.

    Streamed, in three passes over the files, one resource at a time: (1) the index (reference
    resources, identifiers, the odd fullUrl, death dates: `Index`), (2) the Encounters, whose
    category and department the later resources need (kept as two small maps), (3) every other
    mapped resource. Each resource's rows are written as it is mapped; only the ICD-10 conditions of
    stays wait for the end of their pass (a stay's diagnoses are numbered together). A pass reads only
    the files that hold its types (NDJSON is one file per type: each is parsed twice).

    `meta.lastUpdated` absent → the export's transactionTime (argument, manifest, or the end of the
    business date in hospital time).
    """
    seeds = seeds or FhirSeeds.load()
    export_dir = Path(export_dir)
    read = FhirRead()
    index = Index()
    types_of: dict[Path, set[str]] = {}
    for found in read_export(export_dir, read):  # pass 1: the index
        rtype = str(found.resource.get("resourceType"))
        if found.path is not None:
            types_of.setdefault(found.path, set()).add(rtype)
        if rtype not in MAPPED_TYPES and rtype not in REFERENCE_TYPES:
            read.skipped_types[rtype] += 1
            continue
        if found.resource.get("status") in SKIPPED_STATUSES:
            read.withdrawn += 1
            continue
        read.by_type[rtype] += 1
        index.add(found)
    index.finish()
    stamp = hospital_time(transaction_time or read.transaction_time, tz) or \
        datetime.combine(business_date, time(23, 59, 59))

    def mapped(types: tuple[str, ...]) -> Iterator[tuple[str, str, dict[str, Any]]]:
        files = [path for path, held in types_of.items() if held.intersection(types)]
        for found in read_export(export_dir, FhirRead(), files):  # malformed lines were counted in pass 1
            rtype = str(found.resource.get("resourceType"))
            if rtype in types and found.resource.get("status") not in SKIPPED_STATUSES:
                yield rtype, resource_id(found), found.resource

    with contextlib.ExitStack() as stack:
        folders = {source.name: stack.enter_context(LandingFolder(landing_dir, source, business_date, key=key))
                   for source in (HIS_SOURCE, FHIR_SOURCE)}
        mapper = _Mapper(index, seeds, key, tz, stamp, folders)
        for _, rid, resource in mapped(("Encounter",)):  # pass 2
            mapper.encounter(rid, resource)
        for rtype, rid, resource in mapped(("Patient", "Condition", "Procedure", "Claim", "ExplanationOfBenefit",
                                            "ChargeItem")):  # pass 3
            if rtype == "Patient":
                mapper.patient(rid, resource)
            elif rtype == "Condition":
                mapper.condition(rid, resource)
                mapper.diagnosis(rid, resource)
            elif rtype == "Procedure":
                mapper.procedure(rid, resource)
            elif rtype == "ChargeItem":
                mapper.charge_item(rid, resource)
            else:
                mapper.claim(rtype, rid, resource)
        mapper.diagnoses()
        for hospital_id, row in mapper.hospitals.items():
            mapper.put(HIS_SOURCE.entity("hospitals"), hospital_id, row)
        for department_id, row in mapper.departments.items():
            mapper.put(HIS_SOURCE.entity("departments"), department_id, row)
        for reason in read.malformed:  # kept visible: a quarantine row of the encounters file, with the reason
            log.warning("FHIR export: %s", reason)
            mapper.put(FHIR_SOURCE.entity("encounters"), f"~{reason}", {"updated_at": f"not FHIR: {reason}"})
        rows: dict[str, int] = {}
        paths: dict[str, list[Path]] = {}
        for source in (HIS_SOURCE, FHIR_SOURCE):
            folder = folders[source.name]
            for entity in source.entities:
                rows[entity.raw_table] = folder.rows.get(entity.name, 0)
            paths[source.name] = folder.commit()
    log.info("FHIR export → landing %s: %s resources read (%s), %d skipped of types not mapped, %d withdrawn, "
             "%d malformed; %d encounters in an unmapped department", business_date, sum(read.by_type.values()),
             dict(read.by_type), sum(read.skipped_types.values()), read.withdrawn, len(read.malformed),
             mapper.unmapped)
    return FhirLanding(folders[HIS_SOURCE.name].final, folders[FHIR_SOURCE.name].final, paths[HIS_SOURCE.name],
                       paths[FHIR_SOURCE.name], rows, read, mapper.unmapped)


def _text(value: object) -> str:
    return value if isinstance(value, str) else landing_text(value)


