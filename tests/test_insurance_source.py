"""Insurance source 医保: the settlement generator on the simulated HIS, landing with the file loader.

Two throw-away databases on the test server: a small simulated HIS (the stays being settled) and a
warehouse the files are landed in, over two nights (up to the year end, then up to END) so the new
year's catalogue arrives in a later night than the first one. Expected values are recomputed from
the written files or read from the HIS, never typed in; the generator's facts only say what was
planted where. The last test checks the grouper's codes against the real CHS-DRG 1.1 catalogue in
`../shared/reference/` (skipped when that checkout is absent).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections import Counter, defaultdict
from contextlib import closing
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import psycopg2
import pytest

from hospital_ops.load.loader import (
    ensure_raw_schema,
    load_night,
    plan_extract,
    watermark,
)
from hospital_ops.sources.insurance import DRG_CODE_PATTERN, SOURCE
from hospital_ops_sim.his import generate_his
from hospital_ops_sim.insurance import (
    ADRGS,
    CC_CODES,
    MCC_CODES,
    InsuranceGenerationResult,
    assign_drg,
    curated_codes,
    generate_insurance,
)
from reference_parsing import parse_date

KEY = b"test-key"
END = date(2026, 2, 20)
FIRST_NIGHT = date(2025, 12, 31)
HIS_ARGS = {"end": END, "months": 2, "hospitals": 2, "seed": 7, "scale": 0.15, "corrections_per_kind": 1}
SEED = 11
UNMATCHED_SHARE = 0.02
GBK_SHARE = 0.2
CODE_SHAPE = re.compile(DRG_CODE_PATTERN)
REFERENCE = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference" / "opendrg" / "drg_group" / \
    "chs_drg_11" / "DATA"
CENT = Decimal("0.01")


# ------------------------------------------------------------------------------------- helpers


@dataclass
class Delivered:
    """One delivered CSV, decoded independently of the loader."""

    relative: str  # insurance/<YYYY-MM-DD>/<name>
    entity: str
    encoding: str
    rows: list[dict[str, str]]


def decode(data: bytes) -> tuple[str, str]:
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("gb18030"), "gb18030"


def read_inbox(inbox: Path) -> list[Delivered]:
    delivered = []
    for path in sorted((inbox / SOURCE.name).glob("*/*.csv")):
        text, encoding = decode(path.read_bytes())
        entity = "settlements" if path.name.startswith("settlement_") else "drg_catalogue"
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        delivered.append(Delivered(f"{SOURCE.name}/{path.parent.name}/{path.name}", entity, encoding, rows))
    return delivered


def settlement_rows(files: list[Delivered]) -> list[dict[str, str]]:
    return [row for f in files if f.entity == "settlements" for row in f.rows]


def unique_cases(files: list[Delivered]) -> dict[str, dict[str, str]]:
    """One row per case id (a duplicated line is the same case twice)."""
    return {row["case_id"]: row for row in settlement_rows(files)}


def catalogue(files: list[Delivered]) -> dict[tuple[str, str], dict[str, str]]:
    return {(row["catalogue_version"], row["drg_code"]): row
            for f in files if f.entity == "drg_catalogue" for row in f.rows}


def query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def round_half_up(value: Fraction, places: int = 4) -> Decimal:
    return Decimal(math.floor(value * 10 ** places + Fraction(1, 2))).scaleb(-places)


def snapshot(inbox: Path) -> dict[str, bytes]:
    root = inbox / SOURCE.name
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def his_url(fresh_database) -> str:
    url = fresh_database("ins_his")
    generate_his(url, **HIS_ARGS)
    return url


@pytest.fixture(scope="module")
def generated(his_url: str, tmp_path_factory) -> InsuranceGenerationResult:
    inbox = tmp_path_factory.mktemp("inbox")
    return generate_insurance(his_url, inbox, end=END, seed=SEED, unmatched_share=UNMATCHED_SHARE,
                              gbk_share=GBK_SHARE)


@pytest.fixture(scope="module")
def files(generated: InsuranceGenerationResult) -> list[Delivered]:
    return read_inbox(generated.inbox_dir)


@pytest.fixture(scope="module")
def landed(fresh_database, generated: InsuranceGenerationResult) -> SimpleNamespace:
    """The inbox landed in two nights: up to the year end, then the rest up to END."""
    url = fresh_database("ins_wh")
    nights = []
    with closing(psycopg2.connect(url)) as conn:
        ensure_raw_schema(conn, SOURCE)
        for number, night in enumerate((FIRST_NIGHT, END), start=1):
            manifest = plan_extract(generated.inbox_dir, SOURCE, night, watermark(conn, SOURCE.name, night))
            nights.append(load_night(conn, SOURCE, manifest, run_id=f"ins-{number}", batch_date=night, key=KEY))
    return SimpleNamespace(url=url, nights=nights)


# ------------------------------------------------------------------------------------- grouper


@pytest.mark.parametrize(("primary", "secondaries", "procedures", "expected"), [
    ("I21.0", [], ["36.07"], "FM19"),  # operated: the surgical ADRG of the procedure, unsplit
    ("J18.9", ["I26.9"], [], "ES31"),  # MCC
    ("J18.9", ["N18.9", "I10"], [], "ES33"),  # CC
    ("J18.9", ["I10"], [], "ES35"),  # a comorbidity on neither list
    ("I50.0", ["N18.9"], [], "FR25"),  # split 1/5 only: a CC case is "without"
    ("K35.8", ["I26.9"], ["47.01"], "GD23"),  # split 3/5 only: an MCC case is "with CC"
    ("J44.1", ["J44.9"], [], "ET25"),  # a secondary in the primary's category does not count
    ("C34.9", [], ["33.27"], "ER15"),  # a bronchoscopic biopsy is not an OR procedure
    ("R50.9", [], [], "XS15"),  # an unlisted diagnosis falls back to its chapter's "other" ADRG
    ("I71.2", ["L89.9"], [], "FZ11"),
])
def test_grouper_assigns_split_by_complications(primary: str, secondaries: list[str], procedures: list[str],
                                                 expected: str) -> None:
    code, name = assign_drg(primary, secondaries, procedures)
    assert code == expected
    assert CODE_SHAPE.match(code) and name.startswith(ADRGS[code[:3]].name)


def test_rejects_bad_shares(his_url: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unmatched_share"):
        generate_insurance(his_url, tmp_path, end=END, unmatched_share=1.5)


# ------------------------------------------------------------------------------------- generator


def test_deterministic(his_url: str, generated: InsuranceGenerationResult, tmp_path: Path) -> None:
    again = generate_insurance(his_url, tmp_path / "again", end=END, seed=SEED, unmatched_share=UNMATCHED_SHARE,
                               gbk_share=GBK_SHARE)
    assert snapshot(tmp_path / "again") == snapshot(generated.inbox_dir)
    assert again.counts == generated.counts
    other = generate_insurance(his_url, tmp_path / "other", end=END, seed=SEED + 1)
    assert snapshot(tmp_path / "other") != snapshot(generated.inbox_dir)
    assert other.counts["settlements"] > 0


def test_files_are_shaped_like_the_spec(generated: InsuranceGenerationResult, files: list[Delivered]) -> None:
    for delivered in files:
        assert list(delivered.rows[0]) == [c.name for c in SOURCE.entity(delivered.entity).columns]
        folder = delivered.relative.split("/")[1]
        if delivered.entity == "settlements":
            assert delivered.relative.endswith(f"/settlement_{folder}.csv")
            assert {parse_date(row["settled_on"]).isoformat() for row in delivered.rows} == {folder}
    cases = unique_cases(files)
    assert len(cases) == generated.counts["settlements"]
    for row in cases.values():
        lag = (parse_date(row["settled_on"]) - parse_date(row["discharge_date"])).days
        assert 3 <= lag <= 15, row
    assert generated.counts["rows_written"] == sum(len(f.rows) for f in files)


def test_drg_codes_have_the_chs_drg_shape(files: list[Delivered]) -> None:
    groups = catalogue(files)
    assert groups
    for (version, code), row in groups.items():
        assert CODE_SHAPE.match(code), code
        assert row["mdc"] == code[0] and row["adrg"] == code[:3], row
        assert version == f"CHS-DRG-1.1-{row['effective_year']}"
    for row in unique_cases(files).values():
        assert CODE_SHAPE.match(row["drg_code"]), row
        version = f"CHS-DRG-1.1-{parse_date(row['settled_on']).year}"
        assert (version, row["drg_code"]) in groups, row
        if row["drg_name"].strip():
            assert row["drg_name"] == groups[(version, row["drg_code"])]["drg_name"]


def test_new_year_is_a_new_catalogue_version(generated: InsuranceGenerationResult, files: list[Delivered]) -> None:
    first_folder = min(f.relative.split("/")[1] for f in files)
    assert generated.facts["catalogue_files"] == {
        "CHS-DRG-1.1-2025": f"insurance/{first_folder}/drg_catalogue_CHS-DRG-1.1-2025.csv",
        "CHS-DRG-1.1-2026": "insurance/2026-01-01/drg_catalogue_CHS-DRG-1.1-2026.csv",
    }
    versions = Counter(version for version, _ in catalogue(files))
    years = Counter(parse_date(row["settled_on"]).year for row in unique_cases(files).values())
    assert set(versions) == {f"CHS-DRG-1.1-{year}" for year in years} and len(versions) == 2


def test_relative_weights_are_mean_cost_ratios(generated: InsuranceGenerationResult,
                                                files: list[Delivered]) -> None:
    """RW recomputed from the files (cases of the catalogue's year) equals the catalogue and each row;
    DIP points = RW × 100; payment = RW × base rate of the insurance type, less the patient's copay."""
    groups = catalogue(files)
    costs: dict[int, dict[str, list[Decimal]]] = defaultdict(lambda: defaultdict(list))
    cases = unique_cases(files)
    for row in cases.values():
        costs[parse_date(row["settled_on"]).year][row["drg_code"]].append(Decimal(row["case_cost_cny"]))
    negative = {d["case_id"] for d in generated.facts["defects"]["negative_payment"]}
    for year, by_group in costs.items():
        version = f"CHS-DRG-1.1-{year}"
        assert {code for v, code in groups if v == version} == set(by_group)
        everyone = [cost for group in by_group.values() for cost in group]
        overall = Fraction(sum(everyone)) / len(everyone)
        weights = {code: round_half_up(Fraction(sum(group)) / len(group) / overall) for code, group in by_group.items()}
        for code, rw in weights.items():
            assert Decimal(groups[(version, code)]["relative_weight"]) == rw, (version, code)
        cmi = sum(weights[code] * len(group) for code, group in by_group.items()) / len(everyone)
        assert abs(cmi - 1) < Decimal("0.001")
        base = {kind: Decimal(rate) for kind, rate in generated.facts["base_rates"][version].items()}
        for row in cases.values():
            if parse_date(row["settled_on"]).year != year:
                continue
            rw = Decimal(row["relative_weight"])
            assert rw == weights[row["drg_code"]]
            assert Decimal(row["dip_points"]) == rw * 100
            cost, copay = Decimal(row["case_cost_cny"]), Decimal(row["patient_copay_cny"])
            payment = Decimal(row["insurer_payment_cny"])
            if row["insurance_type"].strip():
                assert copay == (cost * {"employee": Decimal("0.15"), "resident": Decimal("0.30")}[
                    row["insurance_type"]]).quantize(CENT)
                standard = (rw * base[row["insurance_type"]]).quantize(CENT)
                expected = max(standard - copay, Decimal("0.00"))
                assert payment == (-expected if row["case_id"] in negative else expected), row
    # DRG economics: some groups gain, others lose (payment + copay − cost per group)
    margin: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    for row in cases.values():
        margin[(parse_date(row["settled_on"]).year, row["drg_code"])] += (
            abs(Decimal(row["insurer_payment_cny"])) + Decimal(row["patient_copay_cny"]) - Decimal(row["case_cost_cny"]))
    assert any(m > 0 for m in margin.values()) and any(m < 0 for m in margin.values())


def test_gbk_files_decode(generated: InsuranceGenerationResult, files: list[Delivered]) -> None:
    settlement_files = [f for f in files if f.entity == "settlements"]
    gbk = {f.relative for f in settlement_files if f.encoding == "gb18030"}
    assert gbk == set(generated.gbk_files)
    assert len(gbk) == round(GBK_SHARE * len(settlement_files))
    for relative in gbk:
        data = (generated.inbox_dir / relative).read_bytes()
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")
        assert re.search(r"[\u4e00-\u9fff]", data.decode("gb18030"))


# ------------------------------------------------------------------------------------- landing


def test_every_row_lands_or_is_quarantined_with_a_reason(generated: InsuranceGenerationResult,
                                                         files: list[Delivered], landed: SimpleNamespace) -> None:
    read_from_files = {f.relative: len(f.rows) for f in files}
    loads = {fl.source_file: fl for night in landed.nights for fl in night.files}
    assert set(loads) == set(read_from_files)
    for relative, rows in read_from_files.items():
        assert loads[relative].rows_read == rows == loads[relative].rows_loaded + loads[relative].rows_quarantined
    ledger = dict(query(landed.url, "select source_file, rows_read from raw._load_files where source = %s",
                        (SOURCE.name,)))
    assert ledger == read_from_files
    raw = query(landed.url, "select count(*) from raw.insurance__settlements")[0][0]
    catalogue_rows = query(landed.url, "select count(*) from raw.insurance__drg_catalogue")[0][0]
    quarantined = query(landed.url, "select record->>'case_id', reason from raw._quarantine where source = %s",
                        (SOURCE.name,))
    assert catalogue_rows == len(catalogue(files))
    assert raw + len(quarantined) + catalogue_rows == sum(read_from_files.values())
    assert len(quarantined) == generated.expected_quarantined

    reasons = dict(quarantined)
    defects = generated.facts["defects"]
    assert set(reasons) == {d["case_id"] for kind in ("duplicate_line", "blank_required", "negative_payment")
                            for d in defects[kind]}
    for d in defects["duplicate_line"]:
        assert reasons[d["case_id"]].startswith("duplicate: same content as"), reasons[d["case_id"]]
    for d in defects["blank_required"]:
        assert reasons[d["case_id"]] == "insurance_type: required value is missing"
    for d in defects["negative_payment"]:
        assert reasons[d["case_id"]] == f"insurer_payment_cny: {d['value']} below plausible minimum 0"
    # every case is in raw exactly once; blanks are NULL, other date formats parsed
    landed_rows = {row[0]: row[1:] for row in query(
        landed.url, "select case_id, settled_on, drg_name, dip_group from raw.insurance__settlements")}
    assert len(landed_rows) == raw
    expected_cases = set(unique_cases(files)) - {d["case_id"] for d in defects["blank_required"]} \
        - {d["case_id"] for d in defects["negative_payment"]}
    assert set(landed_rows) == expected_cases
    for d in defects["blank_optional"]:
        column = ("drg_name", "dip_group").index(d["column"]) + 1
        assert landed_rows[d["case_id"]][column] is None
    for d in defects["mixed_date_format"]:
        assert landed_rows[d["case_id"]][0].isoformat() == d["file"].split("/")[1]


def test_gbk_rows_land_with_their_chinese_names(generated: InsuranceGenerationResult, files: list[Delivered],
                                                landed: SimpleNamespace) -> None:
    defects = generated.facts["defects"]
    rejected = {d["case_id"] for kind in ("blank_required", "negative_payment") for d in defects[kind]}
    expected = {row["case_id"]: row["drg_name"].strip() or None for f in files if f.relative in generated.gbk_files
                for row in f.rows if row["case_id"] not in rejected}
    rows = dict(query(landed.url, "select case_id, drg_name from raw.insurance__settlements "
                                  "where _source_file = any(%s)", (generated.gbk_files,)))
    assert rows == expected
    assert any(name and re.search(r"[\u4e00-\u9fff]", name) for name in rows.values())

def test_catalogue_version_in_force_explains_each_settlement(landed: SimpleNamespace) -> None:
    """The as-of join documented in sources/insurance.py finds every landed settlement's RW."""
    rows = query(landed.url, """
        select s.case_id, s.relative_weight, c.catalogue_version, c.relative_weight
        from raw.insurance__settlements s
        left join lateral (select * from raw.insurance__drg_catalogue c
                           where c.drg_code = s.drg_code and c.effective_year <= extract(year from s.settled_on)
                           order by c.effective_year desc limit 1) c on true""")
    assert rows and all(settled == in_force for _, settled, _, in_force in rows)
    assert {version for _, _, version, _ in rows} == {"CHS-DRG-1.1-2025", "CHS-DRG-1.1-2026"}


def test_unmatched_share_is_exactly_the_planted_cases(generated: InsuranceGenerationResult, his_url: str,
                                                      landed: SimpleNamespace) -> None:
    his_stays = {row[0]: row[1:] for row in query(his_url, """
        select s.stay_id, s.discharged_at::date, d.hospital_id,
               greatest(1, s.discharged_at::date - s.admitted_at::date),
               (select sum(amount_cny) from his.charges c where c.stay_id = s.stay_id)
        from his.inpatient_stays s join his.departments d using (department_id)""")}
    settled = query(landed.url, "select case_id, stay_id, discharge_date, hospital_id, los_days, case_cost_cny "
                                "from raw.insurance__settlements")
    not_joining = {case_id for case_id, stay_id, *_ in settled if stay_id not in his_stays}
    assert not_joining == set(generated.unmatched_case_ids)
    assert len(not_joining) == round(UNMATCHED_SHARE * generated.counts["settlements"]) > 0
    for case_id, stay_id, *values in settled:  # the ones that join settle what the HIS holds
        if stay_id in his_stays:
            assert tuple(values) == his_stays[stay_id], case_id
    true_ids = {fact["stay_id_true"] for fact in generated.facts["unmatched"].values()}
    assert true_ids <= set(his_stays)


# ------------------------------------------------------------------------------------- real catalogue


def test_real_chs_drg_11_catalogue_passes_the_shape_rule_and_holds_our_groups(files: list[Delivered]) -> None:
    drg_json = REFERENCE / "DRG.json"
    if not drg_json.is_file():
        pytest.skip(f"real CHS-DRG 1.1 catalogue not found at {drg_json.resolve()} (the shared reference checkout)")
    real: dict[str, str] = json.loads(drg_json.read_text(encoding="utf-8"))
    assert len(real) == 628
    assert [code for code in real if not CODE_SHAPE.match(code)] == []
    real_adrgs = {code[:3] for code in real}
    assert set(ADRGS) - real_adrgs == set()
    ours = curated_codes()
    assert {code: name for code, name in ours.items() if real.get(code) != name} == {}
    assert {row["drg_code"] for row in unique_cases(files).values()} <= set(real)
    for name, codes in (("MCC", MCC_CODES), ("CC", CC_CODES)):
        table = REFERENCE / f"{name}.json"
        if table.is_file():
            listed = {key.split("x")[0][:5] for key in json.loads(table.read_text(encoding="utf-8"))}
            assert set(codes) - listed == set(), name
