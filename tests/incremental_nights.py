"""A night of one incremental source (SQL or API) outside Airflow, through the functions the DAG's
extract and load tasks call (`pipeline.extract`, `pipeline.load`), with the key and the var dir
(landing under `<var_dir>/landing`) from the environment as in the DAG."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from hospital_ops import pipeline
from hospital_ops.config import environment, settings
from hospital_ops.extract import night_folder
from hospital_ops.extract.api import ApiSettings
from hospital_ops.sources.spec import Source


@dataclass
class IncrementalNight:
    extracted: dict  # pipeline.extract's return value
    load: dict  # pipeline.load's: the reconciliation

    @property
    def watermarks(self) -> dict[str, datetime]:
        return {entity: datetime.fromisoformat(stamp) for entity, stamp in self.extracted["watermarks"].items()}

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        return self.extracted["counts"]


def run_night(source: Source, source_url: str, warehouse_url: str, var_dir: Path, business_date: date, *,
              run_id: str, key: bytes, token: str | None = None, api: ApiSettings | None = None,
              keep_landing: bool = False) -> IncrementalNight:
    """`keep_landing`: the night's landing folder is put back after the load removed it, for a test to read."""
    with environment({"HOSPITAL_OPS_VAR_DIR": str(var_dir), "HOSPITAL_OPS_PSEUDONYM_KEY": key.decode()}):
        extracted = pipeline.extract(source, warehouse_url=warehouse_url, business_date=business_date,
                                     source_url=source_url, source_token=token, api_settings=api)
        folder = night_folder(settings().landing_dir, source, business_date)
        kept = folder.with_name(f"{folder.name}.kept")
        keep = keep_landing and folder.is_dir()
        if keep:
            shutil.copytree(folder, kept)
        load = pipeline.load(source, extracted, warehouse_url=warehouse_url, business_date=business_date,
                             run_id=run_id)
        if keep:
            kept.rename(folder)
    return IncrementalNight(extracted, load)


def landing(var_dir: Path) -> Path:
    """The landing folder of `var_dir` (its sources' night folders)."""
    with environment({"HOSPITAL_OPS_VAR_DIR": str(var_dir)}):
        return settings().landing_dir
