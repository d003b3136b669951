"""The sources the nightly pipeline extracts, by name.

Each source is a module describing its files (see spec.py); the DAG creates one extract → load pair
per entry.
"""

from hospital_ops.sources import his, his_fhir, insurance, referral, survey, vendor
from hospital_ops.sources.spec import Source

SOURCES: dict[str, Source] = {
    vendor.SOURCE.name: vendor.SOURCE,
    his.SOURCE.name: his.SOURCE,
    insurance.SOURCE.name: insurance.SOURCE,
    survey.SOURCE.name: survey.SOURCE,
    referral.SOURCE.name: referral.SOURCE,
}

# every source whose raw tables the nightly pipeline lands, gates and may hold: SOURCES, and the HIS's
# FHIR detail (`his_fhir`), which the HIS extract lands beside the HIS tables when HIS_KIND=fhir (no
# extract task of its own)
LANDED_SOURCES: dict[str, Source] = {**SOURCES, his_fhir.SOURCE.name: his_fhir.SOURCE}
