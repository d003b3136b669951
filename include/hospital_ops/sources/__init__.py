"""The sources the nightly pipeline extracts, by name.

Each source is a module describing its files (see spec.py); the DAG creates one extract → load pair
per entry.
"""

from hospital_ops.sources import his, insurance, referral, survey, vendor
from hospital_ops.sources.spec import Source

SOURCES: dict[str, Source] = {
    vendor.SOURCE.name: vendor.SOURCE,
    his.SOURCE.name: his.SOURCE,
    insurance.SOURCE.name: insurance.SOURCE,
    survey.SOURCE.name: survey.SOURCE,
    referral.SOURCE.name: referral.SOURCE,
}
