"""The SQL HIS contract (docs/his_contract.md) on a second engine: views over a MariaDB HIS, read by the
same SQL extractor through SQLAlchemy (PyMySQL), landed by the same loader into PostgreSQL.

The test starts Debian's MariaDB server itself (mariadb-install-db + mariadbd in a temporary folder, on
a free loopback port, grant tables skipped: nobody else can reach it) and stops it at the end."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from contextlib import closing
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import psycopg2
import pytest

from hospital_ops.extract.sql import extract_sql_source, landed_versions, read_from, watermark_overlap
from hospital_ops.load.loader import ensure_raw_schema, load_night, plan_extract
from hospital_ops.load.parsing import pseudonymize
from hospital_ops.sources.his import SOURCE
from hospital_ops.sources.his_contract import render

KEY = b"mariadb-test"
NIGHT1, NIGHT2 = date(2026, 11, 27), date(2026, 11, 28)
MYSQL_TYPES = {"text": "varchar(128)", "int": "int", "decimal": "decimal(14,2)", "date": "date",
               "timestamp": "datetime", "bool": "boolean", "month": "date"}
T1 = datetime(2026, 11, 27, 10, 0)
T2 = datetime(2026, 11, 28, 9, 30)

# the HIS's own tables (names and extra columns of its own), as a hospital's database has them
ROWS: dict[str, list[dict]] = {
    "hospitals": [{"hospital_id": "H1", "hospital_name": "市第一人民医院", "campus_name": "本部", "level": "tertiary",
                   "consortium_role": "lead", "updated_at": T1}],
    "departments": [{"department_id": "D1", "hospital_id": "H1", "department_name": "心内科", "kind": "clinical",
                     "updated_at": T1}],
    "staff": [{"staff_id": "S1", "department_id": "D1", "staff_name": "李医生", "role": "doctor", "title": "主任医师",
               "title_grade": "正高", "hired_on": date(2010, 1, 1), "left_on": None, "updated_at": T1}],
    "beds": [{"bed_id": "B1", "department_id": "D1", "ward": "3病区", "bed_no": "01", "open_from": date(2020, 1, 1),
              "open_to": None, "updated_at": T1}],
    "equipment": [{"equipment_id": "Q1", "department_id": "D1", "equipment_name": "心电监护仪", "category": "monitor",
                   "purchase_value_cny": Decimal("52000.00"), "acquired_on": date(2021, 5, 1), "retired_on": None,
                   "updated_at": T1}],
    "patients": [{"patient_id": "P1", "patient_name": "王小明", "national_id": "110101199003071234",
                  "phone": "13800138000", "mrn": "MR0001", "gender": "1", "birth_date": date(1990, 3, 7),
                  "updated_at": T1}],
    "outpatient_visits": [{"visit_id": "V1", "patient_id": "P1", "department_id": "D1", "doctor_id": "S1",
                           "visit_at": T1, "visit_type": "specialist", "updated_at": T1}],
    "inpatient_stays": [{"stay_id": "Z1", "patient_id": "P1", "department_id": "D1", "attending_doctor_id": "S1",
                         "admitted_at": datetime(2026, 11, 20, 8), "discharged_at": datetime(2026, 11, 27, 9),
                         "discharge_disposition": "home", "planned_readmission": False, "updated_at": T1}],
    "diagnoses": [{"stay_id": "Z1", "seq_no": 1, "icd10_code": "I21.0", "diagnosis_name": "急性前壁心肌梗死",
                   "is_primary": True, "is_complication": False, "updated_at": T1}],
    "surgeries": [{"surgery_id": "O1", "stay_id": "Z1", "surgeon_id": "S1", "procedure_code": "36.06",
                   "procedure_name": "冠状动脉支架置入", "grade": 4, "minimally_invasive": True,
                   "performed_at": datetime(2026, 11, 21, 14), "updated_at": T1}],
    "charges": [{"charge_id": "C1", "visit_id": None, "stay_id": "Z1", "department_id": "D1", "category": "drug",
                 "amount_cny": Decimal("1234.50"), "charged_at": datetime(2026, 11, 21, 15), "updated_at": T1}],
}


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory):
    server, installer = shutil.which("mariadbd") or "/usr/sbin/mariadbd", shutil.which("mariadb-install-db")
    if not Path(server).exists() or not installer:
        pytest.skip("Debian's mariadb-server is not installed (.ci/run installs it)")
    root = tmp_path_factory.mktemp("mariadb")
    data, port = root / "data", free_port()
    subprocess.run([installer, "--no-defaults", f"--datadir={data}", "--user=root", "--skip-test-db",
                    "--auth-root-authentication-method=normal"], check=True, capture_output=True, timeout=120)
    process = subprocess.Popen(
        [server, "--no-defaults", f"--datadir={data}", f"--socket={root / 'mysqld.sock'}", f"--port={port}",
         "--bind-address=127.0.0.1", "--user=root", "--skip-grant-tables", f"--pid-file={root / 'mysqld.pid'}",
         f"--log-error={root / 'error.log'}", "--character-set-server=utf8mb4"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import pymysql

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                pymysql.connect(host="127.0.0.1", port=port, user="root").close()
                break
            except pymysql.err.OperationalError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"MariaDB did not start: {(root / 'error.log').read_text()[-2000:]}") from None
                time.sleep(0.3)
        yield f"mysql+pymysql://root@127.0.0.1:{port}/his?charset=utf8mb4", port
    finally:
        process.terminate()
        process.wait(timeout=60)


def execute(port: int, *statements: str, params: list | None = None) -> None:
    import pymysql

    with (closing(pymysql.connect(host="127.0.0.1", port=port, user="root", charset="utf8mb4", autocommit=True)) as conn,
          conn.cursor() as cur):
        for statement in statements:
            cur.execute(statement)
        for sql, values in params or []:
            cur.execute(sql, values)


@pytest.fixture(scope="module")
def his_views(mariadb):
    """Native tables `his_native.t_<entity>` with an extra column each, and the contract's views `his.<entity>`."""
    url, port = mariadb
    statements = ["create database his_native character set utf8mb4", "create database his character set utf8mb4"]
    inserts = []
    for entity in SOURCE.entities:
        columns = ", ".join(f"{c.name} {MYSQL_TYPES[c.type]}" for c in entity.columns)
        statements.append(f"create table his_native.t_{entity.name} (row_no int auto_increment primary key, "
                          f"{columns}, internal_note varchar(64))")
        statements.append(f"create view his.{entity.name} as select "
                          f"{', '.join(c.name for c in entity.columns)} from his_native.t_{entity.name}")
        for row in ROWS[entity.name]:
            names = [c.name for c in entity.columns]
            inserts.append(((f"insert into his_native.t_{entity.name} ({', '.join(names)}) "
                            f"values ({', '.join(['%s'] * len(names))})"), [row[n] for n in names]))
    execute(port, *statements, params=inserts)
    return url, port


def land(url: str, warehouse: str, landing: Path, night: date, watermarks: dict) -> tuple[dict, dict]:
    overlap = watermark_overlap()
    with closing(psycopg2.connect(warehouse)) as conn:  # as pipeline.extract: what the look-back must not land twice
        ensure_raw_schema(conn, SOURCE)
        landed = landed_versions(conn, SOURCE, night, {name: read_from(mark, overlap) for name, mark in watermarks.items()})
    extraction = extract_sql_source(SOURCE, url, landing, night, watermarks=watermarks, landed=landed,
                                    overlap=overlap, schema="his", key=KEY)
    with closing(psycopg2.connect(warehouse)) as conn:
        manifest = plan_extract(landing, SOURCE, night, None if not watermarks else night - (NIGHT2 - NIGHT1))
        load = load_night(conn, SOURCE, [m for m in manifest if m.folder_date == night], run_id=f"maria-{night}",
                          batch_date=night, key=KEY)
    return extraction.rows, {"max": extraction.max_updated_at, "load": load.as_dict()}


def raw(warehouse: str, sql: str) -> list[tuple]:
    with closing(psycopg2.connect(warehouse)) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def test_the_contract_document_is_the_spec() -> None:
    assert (Path(__file__).resolve().parents[1] / "docs" / "his_contract.md").read_text(encoding="utf-8") == render()


def test_views_over_a_mariadb_his_land_like_the_postgresql_his(his_views, fresh_database, tmp_path) -> None:
    url, port = his_views
    warehouse = fresh_database("maria")
    rows, night1 = land(url, warehouse, tmp_path, NIGHT1, {})
    assert rows == {name: len(items) for name, items in ROWS.items()}
    assert night1["load"]["rows_quarantined"] == 0
    assert raw(warehouse, "select patient_name_pseudo, mrn_pseudo, birth_date from raw.his__patients") == [
        (pseudonymize("王小明", KEY), pseudonymize("MR0001", KEY), date(1990, 3, 7))]
    assert raw(warehouse, "select grade, minimally_invasive from raw.his__surgeries") == [(4, True)]
    assert raw(warehouse, "select amount_cny from raw.his__charges") == [(Decimal("1234.50"),)]

    # night 2: a correction and a new visit; nothing else moves
    execute(port, params=[
        ("update his_native.t_inpatient_stays set discharge_disposition = 'transfer', updated_at = %s", [T2]),
        (("insert into his_native.t_outpatient_visits (visit_id, patient_id, department_id, doctor_id, visit_at, "
         "visit_type, updated_at) values ('V2', 'P1', 'D1', 'S1', %s, 'general', %s)"), [T2, T2]),
    ])
    rows2, night2 = land(url, warehouse, tmp_path, NIGHT2, night1["max"])
    assert rows2 == {"inpatient_stays": 1, "outpatient_visits": 1}
    assert night2["load"]["rows_quarantined"] == 0
    assert raw(warehouse, "select discharge_disposition from raw.his__inpatient_stays order by _batch_date") == [
        ("home",), ("transfer",)]
