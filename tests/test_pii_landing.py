"""Personal identifiers are pseudonymised by the extractors, before a landing file is written.

A SQL night (the simulated HIS) and a survey API night land into one landing directory; every file
there is searched for the generator's clear national IDs, names and phones, and the pseudonyms in raw
are checked against the keyed hash computed here from the clear values. The per-file marker
(`<name>_pseudo` in the header) is shown both ways: an extractor's file is taken as it is, a column so
headed that holds a clear value is quarantined unshown, and a drop-folder file under the plain names is
still hashed by the loader to the same pseudonyms.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import hmac
import json
from contextlib import closing
from datetime import date, datetime, timedelta

import psycopg2
import pytest

from hospital_ops.extract import night_folder
from hospital_ops.extract.api import ApiSettings
from hospital_ops.extract.sql import night_cutoff
from hospital_ops.load.loader import load_night, plan_extract
from hospital_ops.sources.his import SOURCE as HIS
from hospital_ops.sources.survey import SOURCE as SURVEY
from hospital_ops_sim.his import generate_his
from hospital_ops_sim.survey import generate_survey
from hospital_ops_sim.survey_api import SurveyApiServer
from incremental_nights import landing as landing_dir
from incremental_nights import run_night

KEY = b"landing-test-key"
TOKEN = "test-token-pii"
END = date(2026, 3, 15)
HIS_ARGS = {"end": END, "months": 2, "hospitals": 2, "seed": 7, "scale": 0.12, "corrections_per_kind": 1}
SURVEY_ARGS = {"end": END, "months": 2, "vendors": 14, "seed": 5}
API = ApiSettings(page_size=500, retries=4, backoff_factor=0.05)


def hmac_hex(value: str) -> str:
    """The keyed hash written out here (not imported), as raw holds it: HMAC-SHA256, 32 hex digits."""
    return hmac.new(KEY, value.strip().encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


@pytest.fixture(scope="module")
def nights(fresh_database, tmp_path_factory):  # type: ignore[no-untyped-def]
    his_url, warehouse = fresh_database("pii_his"), fresh_database("pii_wh")
    generate_his(his_url, **HIS_ARGS)
    folder = tmp_path_factory.mktemp("pii_records")
    records = json.loads(generate_survey(his_url, folder / "records.json", **SURVEY_ARGS)
                         .out_file.read_text(encoding="utf-8"))["records"]
    var_dir = tmp_path_factory.mktemp("pii_var")
    run_night(HIS, his_url, warehouse, var_dir, END, run_id="sql-1", key=KEY, keep_landing=True)
    with SurveyApiServer(copy.deepcopy(records), TOKEN) as server:
        run_night(SURVEY, server.base_url, warehouse, var_dir, END, run_id="api-1", key=KEY, token=TOKEN, api=API,
                  keep_landing=True)
    return his_url, warehouse, var_dir, records


def clear_values(his_url: str, records: dict) -> set[str]:
    values = {v for row in query(his_url, "select patient_name, national_id, phone, mrn from his.patients")
              for v in row if v}
    values |= {r[0] for r in query(his_url, "select staff_name from his.staff") if r[0]}
    for entity in SURVEY.entities:
        personal = [c.name for c in entity.columns if c.pii]
        values |= {str(r[name]) for r in records[entity.name] for name in personal if r.get(name)}
    return values


def test_no_clear_identifier_in_any_landing_file(nights) -> None:  # type: ignore[no-untyped-def]
    his_url, _, var_dir, records = nights
    landing = landing_dir(var_dir)
    clear = clear_values(his_url, records)
    assert len(clear) > 100, "the generators write national IDs, names and phones"
    files = [p for p in landing.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"his_patients.csv", "his_staff.csv", "survey_questionnaires.csv",
                                       "survey_complaints.csv"}
    lengths = sorted({len(value) for value in clear})
    for path in files:
        text = path.read_text(encoding="utf-8")
        # every substring of each length a clear value has (one pass, not one scan per value)
        found = {text[i:i + n] for n in lengths for i in range(len(text) - n + 1)} & clear
        assert not found, f"{path.name}: {len(found)} clear identifiers"
        header = next(csv.reader(text.splitlines()))
        entity = (HIS if path.name.startswith("his_") else SURVEY).entity(path.stem.split("_", 1)[1])
        assert header == [c.raw_name for c in entity.columns]  # personal columns marked `<name>_pseudo`


def test_raw_pseudonyms_are_the_keyed_hash_of_the_clear_values(nights) -> None:  # type: ignore[no-untyped-def]
    his_url, warehouse, _, records = nights
    his = {r[0]: r[1:] for r in query(his_url, "select patient_id, patient_name, national_id, phone, mrn "
                                               "from his.patients where updated_at < %s", (night_cutoff(END),))}
    raw = {r[0]: r[1:] for r in query(warehouse, "select patient_id, patient_name_pseudo, national_id_pseudo, "
                                                 "phone_pseudo, mrn_pseudo from raw.his__patients")}
    assert raw and set(raw) == set(his)
    assert raw == {pid: tuple(hmac_hex(v) if v else None for v in values) for pid, values in his.items()}

    cutoff = night_cutoff(END)
    sent = {q["questionnaire_id"]: q for q in records["questionnaires"]
            if datetime.fromisoformat(q["updated_at"]).replace(tzinfo=None) < cutoff}
    landed = {r[0]: r[1:] for r in query(warehouse, "select questionnaire_id, patient_national_id_pseudo, "
                                                    "patient_phone_pseudo from raw.survey__questionnaires")}
    assert landed and set(landed) == set(sent)
    assert landed == {qid: tuple(hmac_hex(q[c]) if q[c] else None for c in ("patient_national_id", "patient_phone"))
                      for qid, q in sent.items()}
    # the same person, the same pseudonym across sources: survey national IDs join the HIS's
    his_ids = {values[1] for values in raw.values() if values[1]}
    assert {v[0] for v in landed.values() if v[0]} <= his_ids


def test_the_pseudo_marker_is_per_file(nights, tmp_path) -> None:  # type: ignore[no-untyped-def]
    his_url, warehouse, var_dir, _ = nights
    extracted = night_folder(landing_dir(var_dir), HIS, END) / "his_patients.csv"
    with extracted.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    patients = {r[0]: r[1:] for r in query(his_url, "select patient_id, patient_name, national_id, phone, mrn "
                                                    "from his.patients")}
    planted = rows[0]["patient_id"]
    clear_id = patients[planted][1]
    assert clear_id
    day = END + timedelta(days=10)
    # an extractor-shaped file whose `_pseudo` column holds a clear value: quarantined, never shown
    folder = tmp_path / "inbox" / "his" / day.isoformat()
    folder.mkdir(parents=True)
    with (folder / "his_patients.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows([{**r, "national_id_pseudo": clear_id} if r["patient_id"] == planted else r for r in rows])
    with closing(psycopg2.connect(warehouse)) as conn:
        load = load_night(conn, HIS, plan_extract(tmp_path / "inbox", HIS, day, None), run_id="marker-1",
                          batch_date=day, key=KEY)
    assert (load.rows_loaded, load.rows_quarantined) == (len(rows) - 1, 1)
    quarantined = query(warehouse, "select reason, record::text from raw._quarantine where batch_date = %s", (day,))
    assert len(quarantined) == 1 and "national_id_pseudo: not a pseudonym" in quarantined[0][0]
    assert clear_id not in quarantined[0][0] + quarantined[0][1]
    # the rows taken as they are keep the extractor's pseudonyms
    loaded = dict(query(warehouse, "select patient_id, national_id_pseudo from raw.his__patients "
                                   "where _batch_date = %s", (day,)))
    assert loaded == {r["patient_id"]: r["national_id_pseudo"] or None for r in rows if r["patient_id"] != planted}

    # a drop-folder file under the plain names (clear values): the loader hashes them, to the same pseudonyms
    day2 = day + timedelta(days=1)
    folder2 = tmp_path / "inbox" / "his" / day2.isoformat()
    folder2.mkdir()
    names = [c.name for c in HIS.entity("patients").columns]
    with (folder2 / "his_patients.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(names)
        for r in rows:
            name, national_id, phone, mrn = patients[r["patient_id"]]
            writer.writerow([r["patient_id"], name or "", national_id or "", phone or "", mrn, r["gender"],
                             r["birth_date"], r["updated_at"]])
    with closing(psycopg2.connect(warehouse)) as conn:
        load = load_night(conn, HIS, plan_extract(tmp_path / "inbox", HIS, day2, day), run_id="marker-2",
                          batch_date=day2, key=KEY)
    assert (load.rows_loaded, load.rows_quarantined) == (len(rows), 0)
    hashed = {r[0]: r[1:] for r in query(warehouse, "select patient_id, patient_name_pseudo, national_id_pseudo, "
                                                    "phone_pseudo, mrn_pseudo from raw.his__patients "
                                                    "where _batch_date = %s", (day2,))}
    assert hashed == {r["patient_id"]: (r["patient_name_pseudo"] or None, r["national_id_pseudo"] or None,
                                        r["phone_pseudo"] or None, r["mrn_pseudo"]) for r in rows}


def test_a_loaded_night_leaves_no_landing_folder(nights) -> None:  # type: ignore[no-untyped-def]
    """Last in this module: the rerun replaces the folder the tests above read, then removes it."""
    his_url, warehouse, var_dir, records = nights
    before = query(warehouse, "select count(*), count(distinct national_id_pseudo) from raw.his__patients "
                              "where _batch_date = %s", (END,))
    run_night(HIS, his_url, warehouse, var_dir, END, run_id="sql-rerun", key=KEY)
    with SurveyApiServer(copy.deepcopy(records), TOKEN) as server:
        run_night(SURVEY, server.base_url, warehouse, var_dir, END, run_id="api-rerun", key=KEY, token=TOKEN, api=API)
    landing = landing_dir(var_dir)
    assert not night_folder(landing, HIS, END).exists() and not night_folder(landing, SURVEY, END).exists()
    assert query(warehouse, "select count(*), count(distinct national_id_pseudo) from raw.his__patients "
                            "where _batch_date = %s", (END,)) == before
