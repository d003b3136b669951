"""Referral channels 合作渠道: the export generator on the simulated HIS, landing with the file loader, and
the match of referred patients to HIS encounters by pseudonymized national ID.

Throw-away databases on the test server: a small simulated HIS (four months, so the latest quarter has
one before it) and one warehouse that lands both the referral exports and the HIS (same pseudonym
key). Expected values are recomputed from the delivered files and the HIS, never typed in; the
generator's facts only say what was planted where.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from contextlib import closing
from datetime import date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import psycopg2
import pytest

from hospital_ops.load.loader import load_night, plan_extract
from hospital_ops.load.parsing import pseudonymize
from hospital_ops.sources import his as his_source
from hospital_ops.sources.referral import SOURCE
from hospital_ops_sim.his import generate_his
from hospital_ops_sim.referral import CHANNEL_PLAN, SCENARIO_FILE, UNKNOWN_CHANNEL_ID, generate_referral, quarter_of
from incremental_nights import run_night
from reference_parsing import parse_timestamp

KEY = b"test-key"
END = date(2026, 3, 15)
HIS_ARGS = {"end": END, "months": 4, "hospitals": 2, "seed": 7, "scale": 0.12, "corrections_per_kind": 1}
REFERRAL_ARGS = {"end": END, "months": 4, "seed": 3}


def query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def decode(data: bytes) -> tuple[str, str]:
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("gb18030"), "gb18030"


def delivered(inbox: Path) -> list[tuple[str, str, list[dict[str, str]]]]:
    """(relative path, encoding, rows) of every delivered CSV, decoded independently of the loader."""
    files = []
    for path in sorted((inbox / SOURCE.name).glob("*/*.csv")):
        text, encoding = decode(path.read_bytes())
        files.append((f"{SOURCE.name}/{path.parent.name}/{path.name}", encoding,
                      list(csv.DictReader(io.StringIO(text, newline="")))))
    return files


def snapshot(inbox: Path) -> dict[str, bytes]:
    root = inbox / SOURCE.name
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def referral(fresh_database, tmp_path_factory) -> SimpleNamespace:
    his_url = fresh_database("referral_his")
    generate_his(his_url, **HIS_ARGS)
    inbox = tmp_path_factory.mktemp("referral_inbox")
    result = generate_referral(his_url, inbox, **REFERRAL_ARGS)
    warehouse = fresh_database("referral_wh")
    with closing(psycopg2.connect(warehouse)) as conn:
        night = load_night(conn, SOURCE, plan_extract(inbox, SOURCE, END, None), run_id="referral-night",
                           batch_date=END, key=KEY)
    run_night(his_source.SOURCE, his_url, warehouse, tmp_path_factory.mktemp("his_var"), END, run_id="his-night",
              key=KEY)
    return SimpleNamespace(his_url=his_url, inbox=inbox, result=result, warehouse=warehouse, night=night,
                           scenarios=json.loads((inbox / SOURCE.name / SCENARIO_FILE).read_text(encoding="utf-8")))


def test_generation_is_deterministic(referral, tmp_path) -> None:
    generate_referral(referral.his_url, tmp_path, **REFERRAL_ARGS)
    assert snapshot(tmp_path) == snapshot(referral.inbox)


def test_every_row_is_loaded_or_quarantined_with_its_reason(referral) -> None:
    files = delivered(referral.inbox)
    defects = referral.scenarios["defects"]
    encodings = {relative: encoding for relative, encoding, _ in files}
    assert {encodings[relative] for relative in defects["gbk_files"] if "channels" in relative} == {"gb18030"}
    by_file = {row[0]: row[1:] for row in query(
        referral.warehouse, "select source_file, rows_read, rows_loaded, rows_quarantined from raw._load_files "
                            "where source = 'referral'")}
    assert set(by_file) == {relative for relative, _, _ in files}
    for relative, _, rows in files:
        read, loaded, quarantined = by_file[relative]
        assert read == len(rows) == loaded + quarantined, relative
    reasons = Counter(reason.split(":")[0] + (": duplicate" if "duplicate" in reason else "")
                      for (reason,) in query(referral.warehouse, "select reason from raw._quarantine "
                                                                 "where source = 'referral'"))
    assert reasons == {"channel_id": len(defects["unknown_channel"]),
                       "referred_at": len(defects["bad_referred_at"]),
                       "duplicate: duplicate": len(defects["duplicated_lines"])}
    assert all(defects[kind] for kind in ("unknown_channel", "bad_referred_at", "duplicated_lines"))
    unknown = query(referral.warehouse, "select count(*) from raw.referral__referrals where channel_id = %s",
                    (UNKNOWN_CHANNEL_ID,))[0][0]
    assert unknown == 0
    # blanks (and a lone space) are nulls; other date formats are parsed
    spaced = defects["space_for_null"]
    [(landed, null_phone)] = query(referral.warehouse, "select count(*), count(*) filter (where patient_phone_pseudo "
                                                         "is null) from raw.referral__referrals "
                                                         "where referral_id = any(%s)", (spaced,))
    assert landed == null_phone > 0
    reformatted = defects["other_date_format"][0]
    row = next(r for _, _, rows in files for r in rows if r.get("referral_id") == reformatted)
    assert query(referral.warehouse, "select referred_at from raw.referral__referrals where referral_id = %s",
                 (reformatted,)) == [(parse_timestamp(row["referred_at"]),)]


def test_channels_land_with_their_chinese_names_and_the_later_register(referral) -> None:
    names = dict(query(referral.warehouse, "select distinct on (channel_id) channel_id, channel_name "
                                           "from raw.referral__channels order by channel_id, _source_file desc"))
    assert names == {plan.channel_id: plan.name for plan in CHANNEL_PLAN}
    joiner = next(plan for plan in CHANNEL_PLAN if plan.joins_latest_quarter)
    files = query(referral.warehouse, "select distinct _source_file from raw.referral__channels where channel_id = %s",
                  (joiner.channel_id,))
    assert len(files) == 1 and files[0][0] != min(r[0] for r in query(
        referral.warehouse, "select _source_file from raw.referral__channels"))


def _his_conversions(referral) -> dict[tuple[str, str], list[bool]]:
    """Per (channel, quarter): for every landed referral, did the patient visit the HIS within the window?
    Computed in Python from the HIS in clear and the delivered files, independently of the warehouse."""
    window = timedelta(days=referral.scenarios["window_days"])
    patient_of = dict(query(referral.his_url, "select national_id, patient_id from his.patients"))
    encounters: dict[str, list[datetime]] = defaultdict(list)
    for patient_id, at in query(referral.his_url, "select patient_id, visit_at from his.outpatient_visits union all "
                                                  "select patient_id, admitted_at from his.inpatient_stays"):
        encounters[patient_id].append(at)
    landed = {r[0] for r in query(referral.warehouse, "select referral_id from raw.referral__referrals")}
    outcome: dict[tuple[str, str], list[bool]] = defaultdict(list)
    seen = set()
    for _relative, _, rows in delivered(referral.inbox):
        for row in rows:
            if "referral_id" not in row or row["referral_id"] not in landed or row["referral_id"] in seen:
                continue
            seen.add(row["referral_id"])
            at = parse_timestamp(row["referred_at"])
            times = encounters.get(patient_of.get(row["patient_national_id"]), [])
            outcome[(row["channel_id"], quarter_of(at.date()))].append(any(at <= t < at + window for t in times))
    return outcome


def test_pseudonymized_keys_join_his_patients_for_the_expected_share(referral) -> None:
    window = referral.scenarios["window_days"]
    rows = query(referral.warehouse, f"""
        with patients as (
            select distinct on (patient_id) patient_id, national_id_pseudo from raw.his__patients
            order by patient_id, updated_at desc),
        encounters as (
            select patient_id, visit_at as at from raw.his__outpatient_visits
            union all select patient_id, admitted_at from raw.his__inpatient_stays)
        select r.channel_id, r.referred_at,
               exists (select 1 from patients p join encounters e using (patient_id)
                       where p.national_id_pseudo = r.patient_national_id_pseudo
                         and e.at >= r.referred_at and e.at < r.referred_at + interval '{window} days')
        from raw.referral__referrals r""")
    in_warehouse: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for channel, at, converted in rows:
        in_warehouse[(channel, quarter_of(at.date()))].append(converted)
    expected = _his_conversions(referral)
    assert {k: sorted(v) for k, v in in_warehouse.items()} == {k: sorted(v) for k, v in expected.items()}

    def share(channel: str, quarter: str | None = None) -> float:
        values = [v for (c, q), vs in in_warehouse.items() for v in vs if c == channel and quarter in (None, q)]
        return sum(values) / len(values)

    latest = referral.scenarios["latest_quarter"]
    previous = max(q for (_, q) in in_warehouse if q < latest)
    low = referral.scenarios["low_conversion"]["channel_id"]
    drop = referral.scenarios["conversion_drop"]["channel_id"]
    assert share(low) < 0.3
    assert share(drop, previous) > 0.5 and share(drop, latest) < 0.35
    others = [plan.channel_id for plan in CHANNEL_PLAN if plan.channel_id not in (low, drop)]
    assert all(0.35 <= share(channel) <= 0.8 for channel in others)
    # overall a realistic share converts, some visit too late and some never come
    total = [v for vs in in_warehouse.values() for v in vs]
    assert 0.4 <= sum(total) / len(total) <= 0.7
    outcomes = Counter()
    for counts in referral.scenarios["outcomes"].values():
        outcomes.update(counts)
    assert outcomes["late"] > 0 and outcomes["never"] > 0
    # the pseudonym is the HIS's: a converted referral's key is a known patient's
    known = {r[0] for r in query(referral.warehouse, "select national_id_pseudo from raw.his__patients")}
    national_ids = {r[0] for r in query(referral.his_url, "select national_id from his.patients")}
    assert {pseudonymize(n, KEY) for n in national_ids} == known - {None}


def test_staging_matches_each_referral_to_the_visit_that_followed(referral) -> None:
    """The dbt matching model the marts use gives the same conversions as the HIS computed in clear."""
    from hospital_ops.dbt_runner import run_dbt

    run_dbt(["build", "--select", "+path:models/staging/referral", "+int_referral__visit_matches",
             "--indirect-selection", "cautious"],
            warehouse_url=referral.warehouse, business_date=END, label="referral staging")

    staged = query(referral.warehouse, "select channel_id, referred_at, is_converted, is_window_closed, window_days, "
                                       "first_visit_at, referred_quarter from intermediate.int_referral__visit_matches")
    by_quarter: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for channel, at, converted, closed, window, first_visit, quarter in staged:
        by_quarter[(channel, quarter_of(at.date()))].append(converted)
        assert window == referral.scenarios["window_days"]
        assert closed == (at + timedelta(days=window) <= datetime.combine(END + timedelta(days=1), datetime.min.time()))
        assert quarter == date(at.year, (at.month - 1) // 3 * 3 + 1, 1)
        assert converted == (first_visit is not None and first_visit < at + timedelta(days=window))
    expected = _his_conversions(referral)
    assert {k: sorted(v) for k, v in by_quarter.items()} == {k: sorted(v) for k, v in expected.items()}
    assert query(referral.warehouse, "select count(*) from staging.stg_referral__referrals") == \
        query(referral.warehouse, "select count(distinct referral_id) from raw.referral__referrals")
