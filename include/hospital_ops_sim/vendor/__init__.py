"""The simulated third-party vendors 第三方服务商: their drop folders of registers, daily logs, staff
rosters and monthly service reports, with planted scenarios and real-world defects.

    catalogue.py   scenarios, service types, names, healthy rates, file names, analytes, prices, roles
    simulation.py  the seeded vendors month by month, the scenarios and defects, generate_vendor_source
    files.py       the formats: CSV in a given encoding, a byte-stable one-row Excel workbook
"""

from hospital_ops_sim.vendor.catalogue import MAX_VENDORS, MIN_MONTHS, MIN_VENDORS, SCENARIOS, UNKNOWN_VENDOR_ID
from hospital_ops_sim.vendor.simulation import (
    PATIENT_FACING_SERVICE_TYPES,
    VendorGenerationResult,
    generate_vendor_source,
    planned_vendors,
)

__all__ = ["MAX_VENDORS", "MIN_MONTHS", "MIN_VENDORS", "PATIENT_FACING_SERVICE_TYPES", "SCENARIOS", "UNKNOWN_VENDOR_ID",
           "VendorGenerationResult", "generate_vendor_source", "planned_vendors"]
