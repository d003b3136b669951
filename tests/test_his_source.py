"""HIS source: the simulated HIS, the SQL extractor, the FHIR Bulk Data path, landing with the file loader.

Four throw-away databases on the test server: two HIS generated with the same seed (one stays
pristine, for determinism, journey checks and the FHIR export; the other receives late corrections)
and warehouses for the SQL and FHIR paths. Expected values are read from the generated data, never
typed in.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from collections import defaultdict
from contextlib import closing
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import psycopg2
import pytest

from hospital_ops.extract.fhir_profile import HIS_TZ, ICD10_SYSTEM, MRN_SYSTEM, NATIONAL_ID_SYSTEM
from hospital_ops.extract.fhir_r4 import FhirLanding, fhir_export_to_landing
from hospital_ops.extract.sql import SqlExtractError, extract_sql_source, load_watermarks, night_cutoff
from hospital_ops.load.loader import load_night, plan_extract
from hospital_ops.load.parsing import pseudonymize
from hospital_ops.sources.his import SOURCE
from hospital_ops.sources.his_fhir import SOURCE as HIS_FHIR_SOURCE
from hospital_ops.sources.spec import Column, Entity, Source
from hospital_ops_sim.his import (
    HIS_SCHEMA,
    TABLE_ORDER,
    TABLES,
    Correction,
    HisGenerationError,
    apply_late_corrections,
    generate_his,
    write_fhir_bulk,
)
from incremental_nights import landing as landing_dir
from incremental_nights import run_night

KEY = b"test-key"
END = date(2026, 3, 15)
SMALL = {"end": END, "months": 2, "hospitals": 2, "seed": 7, "scale": 0.12, "corrections_per_kind": 1}
FHIR_ENTITIES = ("hospitals", "departments", "patients", "outpatient_visits", "inpatient_stays", "diagnoses",
                 "surgeries", "charges")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
EXPORTED_TYPES = {"Organization", "Patient", "Encounter", "Condition", "Procedure", "ChargeItem"}


def fhir_to_landing(export: Path, landing: Path, night: date) -> FhirLanding:
    """The one FHIR reader on the simulator's export (its own time zone, the hospital's seeds)."""
    return fhir_export_to_landing(export, landing, night, key=KEY, tz=HIS_TZ)


def as_fhir_lands(entity: Entity, rows: set[tuple]) -> set[tuple]:
    """SQL-path raw rows as the FHIR reader lands them: a FHIR patient id is a keyed hash of `Patient/<id>`
    (a FHIR id may be the record number), a patient's name and phone are dropped in the extractor, and
    everything else (national ID and record number pseudonyms included) as the SQL extractor lands it."""
    names = [c.name for c in entity.columns]
    if "patient_id" not in names:
        return rows
    at = names.index("patient_id")
    dropped = {names.index(n) for n in ("patient_name", "phone") if n in names}
    return {tuple(None if i in dropped else pseudonymize(f"Patient/{v}", KEY) if i == at else v
                  for i, v in enumerate(row)) for row in rows}


# ------------------------------------------------------------------------------------- helpers


def query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def scalar(url: str, sql: str, params: tuple = ()) -> object:
    return query(url, sql, params)[0][0]


def digest(url: str) -> dict[str, str]:
    return {name: scalar(url, f"select md5(coalesce(string_agg(t::text, E'\\n' order by t::text), '')) "
                              f"from {HIS_SCHEMA}.{name} t") for name in TABLE_ORDER}


def his_rows(url: str, entity: Entity, where: str = "true") -> set[tuple]:
    """The HIS rows of an entity as they should land: spec columns, personal identifiers pseudonymized."""
    columns = ", ".join(c.name for c in entity.columns)
    return {tuple(pseudonymize(str(v), KEY) if c.pii and v is not None else v for c, v in zip(entity.columns, row, strict=True))
            for row in query(url, f"select {columns} from {HIS_SCHEMA}.{entity.name} where {where}")}


def raw_rows(url: str, entity: Entity, batch: date | None = None) -> set[tuple]:
    columns = ", ".join(c.raw_name for c in entity.columns)
    where = "_batch_date = %s" if batch else "true"
    return set(query(url, f"select {columns} from raw.{entity.raw_table} where {where}", (batch,) if batch else ()))


def latest_raw_rows(url: str, entity: Entity) -> set[tuple]:
    """Upsert by business key: the latest version of each row across all nights."""
    keys = ", ".join(entity.business_key)
    columns = ", ".join(c.raw_name for c in entity.columns)
    return set(query(url, f"select distinct on ({keys}) {columns} from raw.{entity.raw_table} "
                          f"order by {keys}, updated_at desc, _batch_date desc"))


def raw_keys(url: str, entity: Entity, batch: date) -> set[tuple]:
    return set(query(url, f"select {', '.join(entity.business_key)} from raw.{entity.raw_table} "
                          "where _batch_date = %s", (batch,)))


def keys_by_table(corrections: list[Correction]) -> dict[str, set[tuple]]:
    keys: dict[str, set[tuple]] = defaultdict(set)
    for correction in corrections:
        keys[correction.table].add(correction.key)
    return dict(keys)


def landing_keys(folder: Path, entity: Entity) -> set[tuple]:
    path = folder / entity.file_pattern
    if not path.exists():
        return set()
    with path.open(encoding="utf-8", newline="") as handle:
        return {tuple(row[k] for k in entity.business_key) for row in csv.DictReader(handle)}


def sql_night(his_url: str, warehouse_url: str, var_dir: Path, night: date, run_id: str):
    return run_night(SOURCE, his_url, warehouse_url, var_dir, night, run_id=run_id, key=KEY, keep_landing=True)


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def his(fresh_database) -> SimpleNamespace:
    """Two HIS databases from the same seed: `url` gets corrected later, `twin` stays as generated."""
    url, twin = fresh_database("his_a"), fresh_database("his_b")
    result, twin_result = generate_his(url, **SMALL), generate_his(twin, **SMALL)
    return SimpleNamespace(url=url, twin=twin, result=result, twin_result=twin_result,
                           digests=(digest(url), digest(twin)))


@pytest.fixture(scope="module")
def night1(his, fresh_database, tmp_path_factory) -> SimpleNamespace:
    """The catch-up night END on the HIS that will be corrected later, with raw as it stood after it."""
    warehouse = fresh_database("wh_sql")
    var_dir = tmp_path_factory.mktemp("var_sql")
    night = sql_night(his.url, warehouse, var_dir, END, "night-1")
    snapshot = {entity.name: raw_rows(warehouse, entity, END) for entity in SOURCE.entities}
    return SimpleNamespace(warehouse=warehouse, var_dir=var_dir, night=night, snapshot=snapshot)


# ------------------------------------------------------------------------------------ generator


def test_generation_is_deterministic(his) -> None:
    first, second = his.digests
    assert first == second
    assert his.result.counts == his.twin_result.counts
    assert his.result.corrections == his.twin_result.corrections
    with pytest.raises(HisGenerationError, match="already has rows"):
        generate_his(his.twin, **SMALL)


def test_the_history_is_written_month_by_month_and_the_cost_jump_with_the_last() -> None:
    """Memory holds a month's rows, not the history: each write the simulation hands on holds the rows
    it simulated during one month (charges of stays admitted that month may fall in the next), and
    the planted cost jump's charges, held back until its department is known, come with the last."""
    from hospital_ops_sim.his.simulation import COST_JUMP_FACTOR, _simulate

    writes: list[dict[str, list[list[object]]]] = []
    world = _simulate(7, END, 4, 2, 0.12, lambda rows: writes.append({k: list(v) for k, v in rows.items()}))
    months = (END.year - world.start.year) * 12 + END.month - world.start.month + 1
    assert len(writes) == months > 1
    visit_at = [c.name for c in TABLES["outpatient_visits"].columns].index("visit_at")
    for write, month in zip(writes, range(months), strict=True):
        index = world.start.month - 1 + month
        first = date(world.start.year + index // 12, index % 12 + 1, 1)
        assert {row[visit_at].date().replace(day=1) for row in write["outpatient_visits"]} == {first}
    assert {name: sum(len(w[name]) for w in writes) for name in TABLE_ORDER} == world.written
    jump = world.cost_jump
    stay = {name: i for i, name in enumerate(c.name for c in TABLES["inpatient_stays"].columns)}
    stays = {row[stay["stay_id"]] for w in writes for row in w["inpatient_stays"]
             if row[stay["department_id"]] == jump["department_id"] and row[stay["discharged_at"]] is not None
             and row[stay["discharged_at"]].date().replace(day=1).isoformat() == jump["month"]}
    assert len(stays) == jump["stays"] > 0 and Decimal(jump["factor"]) == COST_JUMP_FACTOR
    stay_column = [c.name for c in TABLES["charges"].columns].index("stay_id")
    assert stays <= {row[stay_column] for row in writes[-1]["charges"]}
    assert not stays & {row[stay_column] for w in writes[:-1] for row in w["charges"]}


def test_every_table_has_rows_and_the_result_counts_them(his) -> None:
    for name in TABLE_ORDER:
        in_database = scalar(his.twin, f"select count(*) from {HIS_SCHEMA}.{name}")
        assert in_database == his.twin_result.counts[name] > 0, name
    horizon = his.twin_result.facts["horizon"]
    for name in TABLE_ORDER:
        assert scalar(his.twin, f"select count(*) from {HIS_SCHEMA}.{name} "
                                "where updated_at >= %s or updated_at < created_at", (horizon,)) == 0, name


def test_stays_are_consistent(his) -> None:
    url, horizon = his.twin, his.twin_result.facts["horizon"]
    violations = {
        "disposition iff discharged": "select count(*) from his.inpatient_stays "
                                      "where (discharged_at is null) <> (discharge_disposition is null) "
                                      "or (discharged_at is null) <> (planned_readmission is null)",
        "discharge before admission": "select count(*) from his.inpatient_stays where discharged_at < admitted_at",
        "overlapping stays": """
            select count(*) from (select admitted_at, lag(coalesce(discharged_at, 'infinity')) over
                (partition by patient_id order by admitted_at) as previous_end from his.inpatient_stays) s
            where admitted_at < previous_end""",
        "activity after death": """
            select count(*) from his.inpatient_stays d
            join his.outpatient_visits v on v.patient_id = d.patient_id and v.visit_at > d.discharged_at
            where d.discharge_disposition = 'death'""",
        "stay after death": """
            select count(*) from his.inpatient_stays d
            join his.inpatient_stays s on s.patient_id = d.patient_id and s.admitted_at > d.discharged_at
            where d.discharge_disposition = 'death'""",
        "ward over capacity": """
            with nights as (select generate_series(%(start)s::date, %(end)s::date, interval '1 day')::date as night),
            occupied as (select s.department_id, night, count(*) as patients from his.inpatient_stays s
                join nights on night >= s.admitted_at::date
                and night < coalesce(s.discharged_at::date, %(end)s::date + 1) group by 1, 2),
            open_beds as (select b.department_id, night, count(*) as beds from his.beds b
                join nights on night >= b.open_from and (b.open_to is null or night <= b.open_to) group by 1, 2)
            select count(*) from occupied o left join open_beds b using (department_id, night)
            where o.patients > coalesce(b.beds, 0)""",
        "children's ward": """
            select count(*) from his.inpatient_stays s join his.patients p using (patient_id)
            where s.department_id like '%%-PEDS' and p.birth_date <= s.admitted_at::date - interval '15 years'""",
        "obstetrics ward": """
            select count(*) from his.inpatient_stays s join his.patients p using (patient_id)
            where s.department_id like '%%-OBGY' and p.gender <> '2'""",
        "national ID vs birth date and gender": """
            select count(*) from his.patients where substr(national_id, 7, 8) <> to_char(birth_date, 'YYYYMMDD')
            or (substr(national_id, 17, 1)::int %% 2 = 1) <> (gender = '1')""",
    }
    params = {"start": his.twin_result.start, "end": END}
    for name, sql in violations.items():
        assert scalar(url, sql, params if "%(" in sql else ()) == 0, name
    assert scalar(url, "select count(*) from his.inpatient_stays where admitted_at < %s", (his.twin_result.start,)) > 0
    assert scalar(url, "select count(*) from his.inpatient_stays where discharged_at is null") > 0
    assert scalar(url, "select max(updated_at) from his.inpatient_stays") < horizon
    dispositions = {row[0] for row in query(url, "select distinct discharge_disposition from his.inpatient_stays")}
    assert dispositions >= {"home", "transfer", "death", "against_advice"}


def test_readmissions_within_31_days_planned_and_unplanned(his) -> None:
    rows = query(his.twin, """
        select previous_planned, count(*) from (
            select admitted_at, lag(discharged_at) over w as previous_discharge,
                   lag(planned_readmission) over w as previous_planned
            from his.inpatient_stays window w as (partition by patient_id order by admitted_at)) s
        where admitted_at <= previous_discharge + interval '31 days' group by 1""")
    readmissions = dict(rows)
    assert readmissions.get(True, 0) > 0 and readmissions.get(False, 0) > 0
    planned = scalar(his.twin, "select count(*) from his.inpatient_stays where planned_readmission")
    assert readmissions[True] <= planned  # a plan can be dropped or fall after the end


def test_diagnoses_surgeries_and_charges_belong_to_their_journeys(his) -> None:
    url, horizon = his.twin, his.twin_result.facts["horizon"]
    violations = {
        "stay without exactly one primary diagnosis, as number 1": """
            select count(*) from his.inpatient_stays s left join (
                select stay_id, count(*) filter (where is_primary) as primaries,
                       min(seq_no) filter (where is_primary) as primary_seq, max(seq_no) as last, count(*) as n
                from his.diagnoses group by 1) d using (stay_id)
            where d.primaries is distinct from 1 or d.primary_seq <> 1 or d.last <> d.n""",
        "primary complication": "select count(*) from his.diagnoses where is_primary and is_complication",
        "ICD-10 shape": r"select count(*) from his.diagnoses where icd10_code !~ '^[A-Z][0-9]{2}(\.[0-9])?$'",
        "diagnosis outside its stay": """
            select count(*) from his.diagnoses d join his.inpatient_stays s using (stay_id)
            where d.created_at < s.admitted_at or d.created_at > coalesce(s.discharged_at, %(horizon)s)""",
        "surgery outside its stay": """
            select count(*) from his.surgeries o join his.inpatient_stays s using (stay_id)
            where o.performed_at < s.admitted_at or o.performed_at >= coalesce(s.discharged_at, %(horizon)s)""",
        "surgeon not a doctor of the ward at work": """
            select count(*) from his.surgeries o join his.inpatient_stays s using (stay_id)
            join his.staff d on d.staff_id = o.surgeon_id
            where d.role <> 'doctor' or d.department_id <> s.department_id
               or o.performed_at::date not between d.hired_on and coalesce(d.left_on, 'infinity')""",
        "grade-4 surgery by a junior surgeon": """
            select count(*) from his.surgeries o join his.staff d on d.staff_id = o.surgeon_id
            where o.grade = 4 and d.title_grade not in ('正高', '副高')""",
        "visit doctor not of the department at work": """
            select count(*) from his.outpatient_visits v join his.staff d on d.staff_id = v.doctor_id
            where d.role <> 'doctor' or d.department_id <> v.department_id
               or v.visit_at::date not between d.hired_on and coalesce(d.left_on, 'infinity')""",
        "visit charge outside the visit": """
            select count(*) from his.charges c join his.outpatient_visits v using (visit_id)
            where c.charged_at < v.visit_at or c.department_id <> v.department_id""",
        "stay charge outside the stay": """
            select count(*) from his.charges c join his.inpatient_stays s using (stay_id)
            where c.charged_at < s.admitted_at or c.charged_at > coalesce(s.discharged_at, %(horizon)s)
               or c.department_id <> s.department_id""",
        "discharge without all four charge categories": """
            select count(*) from his.inpatient_stays s where discharged_at is not null and
            (select count(distinct category) from his.charges c where c.stay_id = s.stay_id) <> 4""",
        "visit without its medical-service fee": """
            select count(*) from his.outpatient_visits v where not exists
            (select 1 from his.charges c where c.visit_id = v.visit_id and c.category = 'medical_service')""",
    }
    for name, sql in violations.items():
        assert scalar(url, sql, {"horizon": horizon} if "%(" in sql else ()) == 0, name
    grades = dict(query(url, "select grade, count(*) from his.surgeries group by 1"))
    assert set(grades) == {1, 2, 3, 4}
    invasive_share = scalar(url, "select avg(minimally_invasive::int) from his.surgeries")
    assert 0.1 < invasive_share < 0.9
    waits = {row[0] for row in query(url, "select distinct o.performed_at::date - s.admitted_at::date "
                                          "from his.surgeries o join his.inpatient_stays s using (stay_id)")}
    assert 0 in waits and max(waits) >= 3  # same-day emergencies and planned pre-operative waits
    assert scalar(url, "select count(*) from his.diagnoses where is_complication") > 0
    assert scalar(url, "select count(*) from his.staff where title_grade in ('正高', '副高')") > 0


def test_late_corrections_in_history_are_in_the_data(his) -> None:
    corrections = his.twin_result.corrections
    assert {c.table for c in corrections} == {"inpatient_stays", "diagnoses", "surgeries", "charges", "patients"}
    for correction in corrections:
        entity = SOURCE.entity(correction.table)
        where = " and ".join(f"{k} = %s" for k in entity.business_key)
        value, updated, created = query(
            his.twin, f"select {correction.column}, updated_at, created_at from {HIS_SCHEMA}.{correction.table} "
                      f"where {where}", correction.key)[0]
        assert (value, updated) == (correction.new, correction.updated_at), correction
        assert correction.old != correction.new and (updated - created).days >= 1
        assert updated.replace(day=1) > created  # a row of an earlier month, corrected days later


# ------------------------------------------------------------------------------------ SQL path


def test_sql_catch_up_night_lands_every_row(his, night1) -> None:
    night, load = night1.night, night1.night.load
    assert sorted(Path(f["path"]).name for f in night.extracted["files"]) == sorted(f"his_{name}.csv"
                                                                                   for name in TABLE_ORDER)
    assert load["rows_quarantined"] == 0
    assert load["rows_loaded"] == load["rows_read"] == sum(his.result.counts.values())
    for entity in SOURCE.entities:
        assert night1.snapshot[entity.name] == his_rows(his.twin, entity), entity.name
        assert night.watermarks[entity.name] == scalar(
            his.twin, f"select max(updated_at) from {HIS_SCHEMA}.{entity.name}")
    with closing(psycopg2.connect(night1.warehouse)) as conn:
        assert load_watermarks(conn, "his", END + timedelta(days=1)) == night.watermarks
        assert load_watermarks(conn, "his", END) == {}  # nothing before the first night


def test_extract_errors_name_the_table_and_keep_the_previous_folder(his, tmp_path) -> None:
    folder = tmp_path / "his" / END.isoformat()
    folder.mkdir(parents=True)
    (folder / "his_hospitals.csv").write_text("from an earlier run\n", encoding="utf-8")
    with pytest.raises(SqlExtractError, match=r"nope\.hospitals: table not found"):
        extract_sql_source(SOURCE, his.twin, tmp_path, END, watermarks={}, schema="nope")
    hospitals = SOURCE.entity("hospitals")
    changed = dataclasses.replace(hospitals, columns=(*hospitals.columns, Column("bed_count", "int")))
    with pytest.raises(SqlExtractError, match=r"his\.hospitals: missing columns \['bed_count'\]"):
        extract_sql_source(Source("his", "changed", (changed,)), his.twin, tmp_path, END, watermarks={})
    assert [p.name for p in (tmp_path / "his").iterdir()] == [END.isoformat()]  # no half-written folder left
    assert (folder / "his_hospitals.csv").read_text(encoding="utf-8") == "from an earlier run\n"


def test_personal_identifiers_land_only_as_pseudonyms(night1) -> None:
    for entity in SOURCE.entities:
        columns = {row[0] for row in query(night1.warehouse, "select column_name from information_schema.columns "
                                                             "where table_schema = 'raw' and table_name = %s",
                                           (entity.raw_table,))}
        for column in (c for c in entity.columns if c.pii):
            assert column.name not in columns and f"{column.name}_pseudo" in columns
            values = [row[0] for row in query(night1.warehouse,
                                              f"select {column.raw_name} from raw.{entity.raw_table}")]
            assert values and all(HEX32.match(v) for v in values if v is not None), column.name
    patients = night1.snapshot["patients"]
    assert patients and all(HEX32.match(row[2]) for row in patients)  # national_id


# ----------------------------------------------------------------------------------- FHIR path


def test_fhir_bulk_export_reads_back_to_the_same_raw_rows(his, night1, fresh_database, tmp_path) -> None:
    export = write_fhir_bulk(his.twin, tmp_path / "fhir")
    assert set(export.counts) == EXPORTED_TYPES and all(export.counts.values())
    first_patient = json.loads((tmp_path / "fhir" / "Patient.ndjson").read_text(encoding="utf-8").splitlines()[0])
    assert first_patient["resourceType"] == "Patient" and first_patient["meta"]["lastUpdated"].endswith("+08:00")
    assert {i["system"] for i in first_patient["identifier"]} == {NATIONAL_ID_SYSTEM, MRN_SYSTEM}
    condition = json.loads((tmp_path / "fhir" / "Condition.ndjson").read_text(encoding="utf-8").splitlines()[0])
    assert condition["code"]["coding"][0]["system"] == ICD10_SYSTEM
    assert condition["encounter"]["reference"].startswith("Encounter/")
    classes = {json.loads(line)["class"]["code"]
               for line in (tmp_path / "fhir" / "Encounter.ndjson").read_text(encoding="utf-8").splitlines()}
    assert classes == {"AMB", "EMER", "IMP"}

    landing = fhir_to_landing(tmp_path / "fhir", tmp_path / "landing", END)
    assert landing.read.malformed == [] and landing.unmapped_encounters == 0
    assert dict(landing.read.by_type) == export.counts
    warehouse = fresh_database("wh_fhir")
    with closing(psycopg2.connect(warehouse)) as conn:
        manifest = plan_extract(tmp_path / "landing", SOURCE, END, None)
        load = load_night(conn, SOURCE, manifest, run_id="fhir-1", batch_date=END, key=KEY)
    assert load.rows_quarantined == 0
    for name in FHIR_ENTITIES:
        landed = raw_rows(warehouse, SOURCE.entity(name), END)
        expected = as_fhir_lands(SOURCE.entity(name), night1.snapshot[name])
        if name in ("hospitals", "departments"):  # FHIR lands the organisations its encounters name
            assert landed and landed <= expected, name
        else:
            assert landed == expected, name


def test_malformed_fhir_lines_are_quarantined_not_lost(fresh_database, tmp_path) -> None:
    export = tmp_path / "fhir"
    export.mkdir()
    meta = {"lastUpdated": "2026-03-15T10:00:00+08:00"}
    patient = {"resourceType": "Patient", "id": "P1", "meta": meta, "gender": "female",
               "identifier": [{"system": MRN_SYSTEM, "value": "10000001"}]}
    visit = {"resourceType": "Encounter", "id": "OV1", "meta": meta, "status": "finished",
             "class": {"code": "AMB"}, "subject": {"reference": "Patient/P1"},
             "period": {"start": "2026-03-15T09:00:00+08:00"}}
    lines = {
        "Patient.ndjson": [json.dumps(patient), '{"resourceType": "Patient", "id": "P2", "name": [{"text": "张伟"',
                           "[1, 2]"],
        "Encounter.ndjson": [json.dumps(visit), json.dumps({"resourceType": "Observation", "id": "O1"})],
    }
    for name, content in lines.items():
        (export / name).write_text("\n".join(content) + "\n", encoding="utf-8")

    landing = fhir_to_landing(export, tmp_path / "landing", END)
    assert [m.split(":")[:2] for m in landing.read.malformed] == [["Patient.ndjson", "2"], ["Patient.ndjson", "3"]]
    assert "invalid JSON" in landing.read.malformed[0] and landing.read.skipped_types == {"Observation": 1}

    warehouse = fresh_database("wh_bad")
    with closing(psycopg2.connect(warehouse)) as conn:
        for source in (SOURCE, HIS_FHIR_SOURCE):
            load = load_night(conn, source, plan_extract(tmp_path / "landing", source, END, None),
                              run_id="bad-1", batch_date=END, key=KEY)
            assert load.rows_read == load.rows_loaded + load.rows_quarantined
    reasons = [row[0] for row in query(warehouse, "select reason from raw._quarantine")]
    assert len(reasons) == len(landing.read.malformed)  # each malformed line is one quarantine row, with its place
    for where in ("Patient.ndjson:2", "Patient.ndjson:3"):
        assert any(where in reason for reason in reasons), where
    assert scalar(warehouse, "select count(*) from raw._quarantine where record::text like '%%张伟%%'") == 0
    assert [r[0] for r in query(warehouse, "select visit_id from raw.his__outpatient_visits")] == ["OV1"]
    assert [r[0] for r in query(warehouse, "select patient_id from raw.his__patients")] == \
        [pseudonymize("Patient/P1", KEY)]


# ------------------------------------------------------------------------------- later nights


def test_later_nights_take_exactly_the_corrections_and_reruns_are_exact(his, night1, tmp_path) -> None:
    """Kept last: it corrects the HIS and lands further nights in night1's warehouse."""
    warehouse, var_dir = night1.warehouse, night1.var_dir
    night2, night3 = END + timedelta(days=1), END + timedelta(days=2)

    # night 2: late corrections made that day, and nothing else
    first = apply_late_corrections(his.url, night2, seed=SMALL["seed"])
    assert first and all(c.updated_at.date() == night2 for c in first)
    run = sql_night(his.url, warehouse, var_dir, night2, "night-2")
    corrected = keys_by_table(first)
    assert run.load["rows_quarantined"] == 0 and run.load["rows_loaded"] == len(first)
    assert set(run.counts["rows"]) == set(corrected)
    for entity in SOURCE.entities:
        assert raw_keys(warehouse, entity, night2) == corrected.get(entity.name, set()), entity.name
    phone = next(c for c in first if c.table == "patients")
    assert scalar(warehouse, "select phone_pseudo from raw.his__patients where patient_id = %s "
                             "order by updated_at desc limit 1", phone.key) == pseudonymize(phone.new, KEY)

    # rerunning the night changes nothing: same files, same rows, same watermarks
    files = query(warehouse, "select source_file, file_sha256, rows_loaded from raw._load_files "
                             "where batch_date = %s order by 1", (night2,))
    marks = query(warehouse, "select entity, watermark from raw._watermarks where batch_date = %s "
                             "order by 1", (night2,))
    batch = {entity.name: raw_rows(warehouse, entity, night2) for entity in SOURCE.entities}
    sql_night(his.url, warehouse, var_dir, night2, "night-2-rerun")
    assert query(warehouse, "select source_file, file_sha256, rows_loaded from raw._load_files "
                            "where batch_date = %s order by 1", (night2,)) == files
    assert query(warehouse, "select entity, watermark from raw._watermarks where batch_date = %s "
                            "order by 1", (night2,)) == marks
    assert {entity.name: raw_rows(warehouse, entity, night2) for entity in SOURCE.entities} == batch
    assert {r[0] for r in query(warehouse, "select distinct _run_id from raw.his__charges where _batch_date = %s",
                                (night2,))} <= {"night-2-rerun"}

    # the HIS moves on; a rerun of night 2 still takes nothing from after it (re-corrected rows move on)
    second = apply_late_corrections(his.url, night3, seed=SMALL["seed"] + 1)
    sql_night(his.url, warehouse, var_dir, night2, "night-2-after-changes")
    moved = keys_by_table(second)
    for entity in SOURCE.entities:
        expected = corrected.get(entity.name, set()) - moved.get(entity.name, set())
        assert raw_keys(warehouse, entity, night2) == expected, entity.name
    run3 = sql_night(his.url, warehouse, var_dir, night3, "night-3")
    assert run3.load["rows_loaded"] == len(second)
    for entity in SOURCE.entities:
        assert raw_keys(warehouse, entity, night3) == moved.get(entity.name, set()), entity.name

    # upsert by business key over all nights gives back the HIS as it is now, row for row
    for entity in SOURCE.entities:
        assert latest_raw_rows(warehouse, entity) == his_rows(his.url, entity), entity.name

    # an incremental FHIR export (_since the first night) carries the same corrected rows; charges
    # whose encounter is not in it are placed by the encounter-class extension
    write_fhir_bulk(his.url, tmp_path / "fhir", since=night_cutoff(END))
    landing_fhir = fhir_to_landing(tmp_path / "fhir", tmp_path / "landing", night3)
    assert landing_fhir.read.malformed == []
    changed = {table: corrected.get(table, set()) | moved.get(table, set()) for table in FHIR_ENTITIES}
    for name in FHIR_ENTITIES:
        if name in ("hospitals", "departments"):  # FHIR lands the organisations tonight's encounters name
            continue
        entity = SOURCE.entity(name)
        expected = {tuple(pseudonymize(f"Patient/{v}", KEY) if name == "patients" else str(v) for v in key)
                    for key in changed[name]}
        assert landing_keys(landing_fhir.his_folder, entity) == expected, name
    assert {p.name for p in (landing_dir(var_dir) / "his" / night3.isoformat()).iterdir()} == {f"his_{t}.csv" for t in moved}
