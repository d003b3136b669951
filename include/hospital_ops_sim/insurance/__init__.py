"""The simulated medical-insurance platform 医保: daily settlement files and a yearly DRG catalogue,
settled from the simulated HIS's discharged stays.

    grouper.py     the curated CHS-DRG 1.1 grouper: ADRGs with their real codes and names, MCC/CC lists
    simulation.py  reading the HIS, settling, weights and payments, planted defects, the files,
                   generate_insurance
"""

from hospital_ops_sim.insurance.grouper import (
    ADRGS,
    CC_CODES,
    FALLBACK_ADRG,
    MCC_CODES,
    SURGICAL_ADRG,
    Adrg,
    Diagnosis,
    assign_drg,
    curated_codes,
    medical_adrg,
    severity,
)
from hospital_ops_sim.insurance.simulation import (
    CATALOGUE_RELEASE,
    DEFAULT_SEED,
    InsuranceGenerationResult,
    catalogue_version,
    generate_insurance,
    read_his,
    relative_weights,
)

__all__ = ["ADRGS", "CATALOGUE_RELEASE", "CC_CODES", "DEFAULT_SEED", "FALLBACK_ADRG", "MCC_CODES", "SURGICAL_ADRG",
           "Adrg", "Diagnosis", "InsuranceGenerationResult", "assign_drg", "catalogue_version", "curated_codes",
           "generate_insurance", "medical_adrg", "read_his", "relative_weights", "severity"]
