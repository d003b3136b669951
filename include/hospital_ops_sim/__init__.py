"""The simulated hospital sources, for development, the demo, the benchmark and the tests: seeded,
deterministic generators of each source's deliveries (vendor/, his/, insurance/, survey, referral),
local servers speaking the sources' protocols (survey_api, fhir_bulk_server), and the command
`hospital-ops-sim` (cli, bench) that drives the product with them.

This package imports the product (`hospital_ops`); the product never imports it, and it is a separate,
development-only distribution (pyproject.toml beside this file) the Airflow image does not install."""

from __future__ import annotations

import logging
import re
import shutil
from datetime import date
from pathlib import Path

log = logging.getLogger(__name__)

SCENARIO_FILE = "_scenarios.json"  # what a generator planted, beside the drop folders it wrote


def prepare_source_dir(source_dir: Path) -> None:
    """Clear what an earlier run of a generator left in a source's inbox folder (its dated drop
    folders, recognised by the scenario file beside them); leave anything else and say so."""
    if not source_dir.exists():
        source_dir.mkdir(parents=True)
        return
    if (source_dir / SCENARIO_FILE).exists():
        for child in source_dir.iterdir():
            if child.is_dir() and re.fullmatch(r"\d{4}-\d{2}-\d{2}", child.name):
                shutil.rmtree(child)
        (source_dir / SCENARIO_FILE).unlink()
    elif any(source_dir.iterdir()):
        log.warning("%s is not empty and was not written by this generator: writing alongside", source_dir)


def month_start(day: date, months_later: int = 0) -> date:
    """The first day of `day`'s month, `months_later` months on (negative: earlier)."""
    index = day.year * 12 + day.month - 1 + months_later
    return date(index // 12, index % 12 + 1, 1)
