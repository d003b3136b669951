"""The simulated HIS: a hospital information system's OLTP database, filled by a seeded simulation
of a consortium's wards and clinics, with late corrections and an HL7 FHIR R4 Bulk export.

    catalogue.py    hospitals, department profiles and case mix, volumes, titles, equipment, name pools
    simulation.py   the seeded world day by day, the planted cost jump, late corrections, generate_his
    database.py     the `his` schema (create_his_database) and the bulk COPY of the simulation's rows
    fhir_export.py  the same data as FHIR R4 Bulk Data NDJSON (write_fhir_bulk)
"""

from hospital_ops_sim.his.database import (
    HIS_SCHEMA,
    METADATA,
    TABLE_ORDER,
    TABLES,
    HisGenerationError,
    create_his_database,
)
from hospital_ops_sim.his.fhir_export import FhirExport, write_fhir_bulk
from hospital_ops_sim.his.simulation import (
    COST_JUMP_FACTOR,
    COST_JUMP_SETTLED_DAYS,
    DEFAULT_HOSPITALS,
    DEFAULT_MONTHS,
    DEFAULT_SEED,
    MAX_HOSPITALS,
    Correction,
    HisGenerationResult,
    apply_late_corrections,
    generate_his,
)

__all__ = [
    "COST_JUMP_FACTOR",
    "COST_JUMP_SETTLED_DAYS",
    "DEFAULT_HOSPITALS",
    "DEFAULT_MONTHS",
    "DEFAULT_SEED",
    "HIS_SCHEMA",
    "MAX_HOSPITALS",
    "METADATA",
    "TABLES",
    "TABLE_ORDER",
    "Correction",
    "FhirExport",
    "HisGenerationError",
    "HisGenerationResult",
    "apply_late_corrections",
    "create_his_database",
    "generate_his",
    "write_fhir_bulk",
]
