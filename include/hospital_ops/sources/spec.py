"""Declarative description of what a source delivers: its files, columns, types and keys.

One spec serves the generator (what to write), the loader (how to parse, what to quarantine, which
raw table to COPY into) and the documentation. Later sources (HIS, insurance, survey, channels)
describe themselves the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ColumnType = Literal["text", "int", "decimal", "date", "timestamp", "bool", "month"]
# The plausible range of a date, timestamp or month column (the limits themselves are dbt vars in
# dbt_project.yml, read by hospital_ops.config.date_bounds; a value outside is quarantined at landing):
# - "event": something that happened in the history the platform covers: from `history_start_date` to
#   the business date plus `future_date_tolerance_days` (a visit, a charge, a reading, a report);
# - "register": a register's date, which may predate that history: from `register_start_date` (a hire,
#   a birth, an acquisition, a record's updated_at) to the business date plus the same tolerance;
# - "term": a date that is planned or ends a term: from `register_start_date` to `term_horizon_years`
#   after the business date (a contract's end, a certificate's expiry, a scheduled follow-up).
DateRange = Literal["event", "register", "term"]

PG_TYPES: dict[str, str] = {
    "text": "text",
    "int": "bigint",
    "decimal": "numeric",
    "date": "date",
    "timestamp": "timestamp",
    "bool": "boolean",
    "month": "date",  # first day of the month
}


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType = "text"
    required: bool = False
    pii: bool = False  # replaced by a keyed hash at landing; the raw column is named <name>_pseudo
    min: float | None = None  # plausibility bounds: a value outside is a malformed row
    max: float | None = None
    allowed: tuple[str, ...] | None = None
    references: tuple[str, str] | None = None  # (entity, column) that must already be known
    # free text a person typed (a survey comment, a complaint): phone and national-ID numbers in it are
    # scrubbed by an extractor (API sources, hospital_ops.extract.api) before anything is written to
    # disk (hospital_ops.extract.scrub); a file source's files arrive on disk as the source wrote them
    free_text: bool = False
    dates: DateRange = "event"  # the plausible range of a date, timestamp or month column (above)

    @property
    def raw_name(self) -> str:
        return f"{self.name}_pseudo" if self.pii else self.name


@dataclass(frozen=True)
class RowRule:
    """A rule between two columns of the same row, checked at landing: `left op right` must hold when
    both have a value, or the row is quarantined with the rule's reason (passed items never exceed the
    items checked, a report is issued after its specimen is received, …)."""

    left: str
    op: Literal["<=", ">="]
    right: str
    reason: str  # what the rule means, in a few words

    @property
    def message(self) -> str:
        broken = ">" if self.op == "<=" else "<"
        return f"{self.left} {broken} {self.right}: {self.reason}"


@dataclass(frozen=True)
class Entity:
    """One kind of file a source delivers, landing in raw.<source>__<name>."""

    source: str
    name: str
    file_pattern: str  # glob inside a night's drop folder
    columns: tuple[Column, ...]
    business_key: tuple[str, ...]
    description: str
    file_format: Literal["csv", "xlsx"] = "csv"
    sheet: str | None = None
    load_order: int = 10  # reference data (registries) loads before what refers to it
    row_rules: tuple[RowRule, ...] = ()

    @property
    def raw_table(self) -> str:
        return f"{self.source}__{self.name}"

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)


@dataclass(frozen=True)
class Source:
    name: str
    description: str
    entities: tuple[Entity, ...] = field(default_factory=tuple)
    # how a night's files arrive: "files" (dropped into the inbox by the source), "sql" (extracted
    # from the source database by updated_at into the landing folder, see hospital_ops.extract.sql) or
    # "api" (read from a paged JSON API by updated_at into the landing folder, see hospital_ops.extract.api)
    extract: Literal["files", "sql", "api"] = "files"
    # the Airflow connection / environment variables naming a SQL source's database (<NAME>_URL) or an
    # API source's base URL and token (<NAME>_URL, <NAME>_TOKEN)
    connection: str | None = None
    # a SQL source: the database schema its tables are in (None: "his", hospital_ops.extract.sql.DEFAULT_SCHEMA)
    sql_schema: str | None = None

    def entity(self, name: str) -> Entity:
        for ent in self.entities:
            if ent.name == name:
                return ent
        raise KeyError(name)
