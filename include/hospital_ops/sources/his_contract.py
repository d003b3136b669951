"""docs/his_contract.md, rendered from the HIS spec (`hospital_ops.sources.his`) so it cannot drift:
`python -m hospital_ops.sources.his_contract > docs/his_contract.md`; tests/test_his_contract.py checks it."""

from __future__ import annotations

from hospital_ops.sources.his import SOURCE
from hospital_ops.sources.spec import Column

SQL_TYPES = {"text": "text / varchar", "int": "integer", "decimal": "numeric / decimal", "date": "date",
             "timestamp": "timestamp (local hospital time, no zone)", "bool": "boolean", "month": "date"}

HEADER = """# The HIS SQL contract 医院信息系统数据接口规范

What the nightly SQL extractor (`hospital_ops.extract.sql`) reads from a hospital's HIS database, so that
the hospital's IT can build views over their own HIS. Generated from `include/hospital_ops/sources/his.py`
(`python -m hospital_ops.sources.his_contract > docs/his_contract.md`); a test keeps the two equal.

## The rules every table follows
- **Where.** One table or view per entity, named as below, in the schema `his` (any database SQLAlchemy
  reaches: PostgreSQL, MariaDB/MySQL, …; `HIS_URL` or the Airflow connection `his`). Extra columns are
  ignored; a missing column or table stops the night with an error naming it.
- **`updated_at`** (every table): the time the row last changed, local hospital time without zone,
  never moving backwards for a row. A night takes the rows with
  `watermark < updated_at < start of the day after the business date`, where the watermark is the
  largest `updated_at` an earlier night extracted; a corrected row must get a new `updated_at` and is
  re-sent whole (staging keeps the latest version per key). All tables are read in one REPEATABLE READ
  transaction.
- **Keys.** The business key identifies a row across corrections; it must be unique among the current
  rows of the view.
- **Values.** Blank strings are nulls. Enumerations use the codes listed. Money is CNY. Personal columns
  (marked *personal*) are replaced by a keyed hash when they land and never reach the marts.
- **References.** `department_id` and `hospital_id` must name a department / hospital the HIS has
  delivered (in the same night or before). Clinical links (patient, stay, doctor) are not checked at
  landing.
- **Or no views at all: FHIR.** A HIS that offers HL7 FHIR R4 (a Bulk Data `$export`, or Bundles / NDJSON
  in a drop folder) needs none of these views: with `HIS_KIND=fhir` the FHIR reader
  (`hospital_ops.extract.fhir_r4`) lands the same tables (hospitals, departments, patients, visits, stays,
  ICD-10 diagnoses, surgeries, CNY charges; not staff, beds or equipment), so the same gate suites and
  marts apply (README, "The HIS over FHIR"). The pseudonyms agree across the two interfaces: a national
  ID or record number is hashed alone by either (a FHIR patient without an MR identifier has its id as
  its record number); a FHIR patient's `patient_id` is a keyed hash of `Patient/<id>`.
"""


def _rule(column: Column) -> str:
    parts = []
    if column.allowed:
        parts.append("one of " + ", ".join(f"`{a}`" for a in column.allowed))
    if column.min is not None or column.max is not None:
        parts.append(f"between {column.min:g} and {column.max:g}")
    if column.references:
        parts.append(f"→ {column.references[0]}.{column.references[1]}")
    if column.pii:
        parts.append("*personal*: hashed at landing")
    return "; ".join(parts)


def render() -> str:
    lines = [HEADER]
    for entity in SOURCE.entities:
        lines.append(f"## `his.{entity.name}`\n")
        lines.append(f"{entity.description}. Business key: {', '.join(f'`{k}`' for k in entity.business_key)}.\n")
        lines.append("| column | type | required | rule |")
        lines.append("|---|---|---|---|")
        for column in entity.columns:
            lines.append(f"| `{column.name}` | {SQL_TYPES[column.type]} | {'yes' if column.required else ''} | "
                         f"{_rule(column)} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
