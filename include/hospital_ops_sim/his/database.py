"""The simulated HIS's database: a normalized OLTP schema `his` in an existing PostgreSQL database
(tables named like the entities of `hospital_ops.sources.his.SOURCE`, with primary and foreign keys,
checks, `created_at` and an indexed `updated_at`), and the bulk load of the simulation's rows.

Rows are bulk-loaded with PostgreSQL COPY through the SQLAlchemy engine's DBAPI connection: inserting
several hundred thousand rows with executemany would take minutes instead of seconds.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping

import sqlalchemy as sa

from hospital_ops.sources.his import SOURCE
from hospital_ops.sources.spec import Entity

HIS_SCHEMA = "his"


class HisGenerationError(RuntimeError):
    """The simulated HIS cannot be generated as asked (bad arguments, a database that is not empty)."""


# ===================================================================================== the schema

_SA_TYPES: dict[str, Callable[[], sa.types.TypeEngine]] = {
    "text": sa.Text,
    "int": sa.Integer,
    "decimal": lambda: sa.Numeric(14, 2),
    "date": sa.Date,
    "timestamp": sa.DateTime,
    "bool": sa.Boolean,
    "month": sa.Date,
}
_FOREIGN_KEYS: dict[tuple[str, str], str] = {
    ("departments", "hospital_id"): "hospitals.hospital_id",
    ("staff", "department_id"): "departments.department_id",
    ("beds", "department_id"): "departments.department_id",
    ("equipment", "department_id"): "departments.department_id",
    ("outpatient_visits", "patient_id"): "patients.patient_id",
    ("outpatient_visits", "department_id"): "departments.department_id",
    ("outpatient_visits", "doctor_id"): "staff.staff_id",
    ("inpatient_stays", "patient_id"): "patients.patient_id",
    ("inpatient_stays", "department_id"): "departments.department_id",
    ("inpatient_stays", "attending_doctor_id"): "staff.staff_id",
    ("diagnoses", "stay_id"): "inpatient_stays.stay_id",
    ("surgeries", "stay_id"): "inpatient_stays.stay_id",
    ("surgeries", "surgeon_id"): "staff.staff_id",
    ("charges", "visit_id"): "outpatient_visits.visit_id",
    ("charges", "stay_id"): "inpatient_stays.stay_id",
    ("charges", "department_id"): "departments.department_id",
}
_CHECKS: dict[str, tuple[str, ...]] = {
    "surgeries": ("grade between 1 and 4",),
    "charges": ("(visit_id is null) <> (stay_id is null)",),
    "inpatient_stays": ("discharged_at is null or discharged_at >= admitted_at",),
    "beds": ("open_to is null or open_to >= open_from",),
}
_UNIQUE: dict[str, tuple[str, ...]] = {"patients": ("mrn",)}


def _table(metadata: sa.MetaData, entity: Entity) -> sa.Table:
    """The HIS table of an entity: the spec's columns (updated_at last), created_at, keys and checks."""
    columns: list[sa.SchemaItem] = []
    for column in entity.columns:
        if column.name == "updated_at":
            columns.append(sa.Column("created_at", sa.DateTime, nullable=False))
        args: list[sa.SchemaItem] = []
        target = _FOREIGN_KEYS.get((entity.name, column.name))
        if target:
            args.append(sa.ForeignKey(f"{HIS_SCHEMA}.{target}"))
        columns.append(sa.Column(column.name, _SA_TYPES[column.type](), *args,
                                 nullable=not (column.required or column.name in entity.business_key)))
    columns.append(sa.PrimaryKeyConstraint(*entity.business_key, name=f"{entity.name}_pkey"))
    columns.extend(sa.CheckConstraint(check) for check in _CHECKS.get(entity.name, ()))
    columns.extend(sa.UniqueConstraint(name) for name in _UNIQUE.get(entity.name, ()))
    table = sa.Table(entity.name, metadata, *columns)
    sa.Index(f"{entity.name}__updated_at", table.c.updated_at)
    return table


METADATA = sa.MetaData(schema=HIS_SCHEMA)
TABLES: dict[str, sa.Table] = {entity.name: _table(METADATA, entity) for entity in SOURCE.entities}
TABLE_ORDER: tuple[str, ...] = tuple(e.name for e in sorted(SOURCE.entities, key=lambda e: e.load_order))


def create_his_database(url: str) -> None:
    """Create the `his` schema and its tables in the (existing) database at `url`; idempotent."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"create schema if not exists {HIS_SCHEMA}"))
            METADATA.create_all(conn, checkfirst=True)
    finally:
        engine.dispose()


def _require_empty(conn: sa.Connection) -> None:
    for name in TABLE_ORDER:
        if conn.execute(sa.select(sa.literal(1)).select_from(TABLES[name]).limit(1)).first() is not None:
            raise HisGenerationError(f"{HIS_SCHEMA}.{name} already has rows: generate into an empty database")


def _copy_rows(conn: sa.Connection, rows: Mapping[str, list[list[object]]], chunk: int = 50_000) -> None:
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        for name in TABLE_ORDER:
            columns = ", ".join(column.name for column in TABLES[name].columns)
            sql = f"copy {HIS_SCHEMA}.{name} ({columns}) from stdin with (format csv)"
            table_rows = rows[name]
            for offset in range(0, len(table_rows), chunk):
                buffer = io.StringIO()
                csv.writer(buffer, lineterminator="\n").writerows(table_rows[offset:offset + chunk])
                if hasattr(cursor, "copy_expert"):  # psycopg2
                    buffer.seek(0)
                    cursor.copy_expert(sql, buffer)
                else:  # psycopg 3, SQLAlchemy's default PostgreSQL driver
                    with cursor.copy(sql) as copy:
                        copy.write(buffer.getvalue())
    finally:
        cursor.close()
