"""The simulated HIS: a hospital information system's OLTP database, filled by a seeded simulation
of a consortium's wards and clinics, with late corrections and an HL7 FHIR R4 Bulk export."""

from hospital_ops_sim.his.simulation import (
    COST_JUMP_FACTOR,
    COST_JUMP_SETTLED_DAYS,
    DEFAULT_HOSPITALS,
    DEFAULT_MONTHS,
    DEFAULT_SEED,
    HIS_SCHEMA,
    MAX_HOSPITALS,
    METADATA,
    TABLE_ORDER,
    TABLES,
    Correction,
    FhirExport,
    HisGenerationError,
    HisGenerationResult,
    apply_late_corrections,
    create_his_database,
    generate_his,
    write_fhir_bulk,
)

__all__ = ["COST_JUMP_FACTOR", "COST_JUMP_SETTLED_DAYS", "DEFAULT_HOSPITALS", "DEFAULT_MONTHS", "DEFAULT_SEED",
           "HIS_SCHEMA", "MAX_HOSPITALS", "METADATA", "TABLE_ORDER", "TABLES", "Correction", "FhirExport",
           "HisGenerationError", "HisGenerationResult", "apply_late_corrections", "create_his_database",
           "generate_his", "write_fhir_bulk"]
