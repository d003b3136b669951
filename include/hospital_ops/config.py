"""Where things live and how they are configured.

Every setting comes from the environment with a project-local default, so the same code runs on the
embedded warehouse, in the docker-compose stack and on a hospital's own servers.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _path_from_env(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


@dataclass(frozen=True)
class Settings:
    """Resolved settings for one process."""

    project_root: Path
    var_dir: Path
    inbox_dir: Path
    dbt_project_dir: Path
    expectations_dir: Path

    @property
    def warehouse_dir(self) -> Path:
        return self.var_dir / "warehouse"

    @property
    def data_docs_dir(self) -> Path:
        return self.var_dir / "data_docs"

    @property
    def survey_simulator_file(self) -> Path:
        """The records the simulated survey platform serves (`hospital-ops-sim generate` writes them)."""
        return self.var_dir / "survey_api" / "survey_records.json"

    @property
    def landing_dir(self) -> Path:
        """Where SQL sources' nightly extracts are written before the loader lands them."""
        return self.var_dir / "landing"


def source_url(connection: str) -> str | None:
    """A SQL source's database URL or an API source's base URL from the environment: <CONNECTION>_URL
    (e.g. HIS_URL, SURVEY_API_URL)."""
    return os.environ.get(f"{connection.upper()}_URL") or None


def source_token(connection: str) -> str | None:
    """An API source's bearer token from the environment: <CONNECTION>_TOKEN (e.g. SURVEY_API_TOKEN)."""
    return os.environ.get(f"{connection.upper()}_TOKEN") or None


def settings() -> Settings:
    var_dir = _path_from_env("HOSPITAL_OPS_VAR_DIR", PROJECT_ROOT / "var")
    return Settings(
        project_root=PROJECT_ROOT,
        var_dir=var_dir,
        inbox_dir=_path_from_env("HOSPITAL_OPS_INBOX", var_dir / "inbox"),
        dbt_project_dir=PROJECT_ROOT / "dbt_project",
        expectations_dir=PROJECT_ROOT / "expectations",
    )


def pseudonym_key() -> bytes:
    """The keyed-hash secret for pseudonymizing personal identifiers at landing.

    Taken from HOSPITAL_OPS_PSEUDONYM_KEY (the Airflow DAG fills it from the `pseudonym_key`
    connection/variable when set). On a developer machine with neither, a random key is created
    once under var/secrets/ (git-ignored) so pseudonyms stay stable across nights; it never
    enters the repository.
    """
    value = os.environ.get("HOSPITAL_OPS_PSEUDONYM_KEY")
    if value:
        return value.encode("utf-8")
    key_file = settings().var_dir / "secrets" / "pseudonym.key"
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
    return key_file.read_text().strip().encode("utf-8")


@dataclass(frozen=True)
class DateBounds:
    """The plausible dates of every source (see DateRange in hospital_ops.sources.spec)."""

    history_start: date
    future_tolerance_days: int
    register_start: date
    term_horizon_years: int


def date_bounds() -> DateBounds:
    """The date limits, read from the dbt project's vars, so the loader and dbt's month spines share one
    configuration (`history_start_date`, `future_date_tolerance_days`, `register_start_date`,
    `term_horizon_years` in dbt_project/dbt_project.yml; HOSPITAL_OPS_HISTORY_START_DATE overrides the first,
    and dbt_runner passes it to dbt as a var)."""
    import yaml

    with (settings().dbt_project_dir / "dbt_project.yml").open(encoding="utf-8") as handle:
        values = yaml.safe_load(handle)["vars"]
    return DateBounds(
        # a hospital loading years of history (a FHIR export, a backfill) moves it without editing the project
        history_start=date.fromisoformat(os.environ.get("HOSPITAL_OPS_HISTORY_START_DATE")
                                         or str(values["history_start_date"])),
        future_tolerance_days=int(values["future_date_tolerance_days"]),
        register_start=date.fromisoformat(str(values["register_start_date"])),
        term_horizon_years=int(values["term_horizon_years"]),
    )


@contextmanager
def environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or, for None, unset) environment variables while the block runs; restore them after."""
    saved = {key: os.environ.get(key) for key in values}
    try:
        _set_environment(values)
        yield
    finally:
        _set_environment(saved)


def _set_environment(values: Mapping[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def hospital_timezone() -> ZoneInfo:
    """The hospital's time zone, one setting for the extractors (FHIR instants with any offset are
    converted to it) and the marts: HOSPITAL_OPS_TIMEZONE, default Asia/Shanghai (no daylight saving)."""
    from zoneinfo import ZoneInfo

    return ZoneInfo(os.environ.get("HOSPITAL_OPS_TIMEZONE") or "Asia/Shanghai")
