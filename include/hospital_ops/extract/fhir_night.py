"""The HIS over FHIR as a source of the nightly DAG: configuration, extract and load of a night.

Which interface the HIS speaks is configuration (README, "Configuration"):

    HIS_KIND=sql    (default) the HIS database, HIS_URL or the Airflow connection `his`
    HIS_KIND=fhir   an HL7 FHIR R4 export, either
                    the Airflow connection `his_fhir` (see FhirServerSettings), else
                    HIS_FHIR_URL: a FHIR server's Bulk Data `$export` (`hospital_ops.extract.fhir_bulk`),
                      system level (or HIS_FHIR_GROUP → that Group), `_since` = the previous night's
                      export transactionTime (kept in raw._watermarks, entity `bulk_export`), with
                      HIS_FHIR_TOKEN (bearer) or SMART Backend Services (HIS_FHIR_CLIENT_ID,
                      HIS_FHIR_TOKEN_URL, HIS_FHIR_PRIVATE_KEY_FILE);
                    or HIS_FHIR_DIR: a drop folder of Bundles and/or Bulk NDJSON read whole each night
                      (a full export; staging keeps the latest version of each key)

`extract_his_fhir` writes the night's landing folders of `his` and `his_fhir` (see
`hospital_ops.extract.fhir_r4`); `load_his_fhir_detail` lands the `his_fhir` one after the HIS
tables. Landing files are removed once their night has loaded (the loader keeps their checksums in
`raw._load_files`).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hospital_ops.config import hospital_timezone, pseudonym_key, settings
from hospital_ops.extract.fhir_bulk import BulkDataClient, SmartBackend
from hospital_ops.extract.fhir_r4 import MAPPED_TYPES, REFERENCE_TYPES, fhir_export_to_landing
from hospital_ops.load.loader import ManifestEntry, ensure_raw_schema, load_night, plan_extract
from hospital_ops.sources.his import SOURCE as HIS_SOURCE
from hospital_ops.sources.his_fhir import SOURCE as FHIR_SOURCE

if TYPE_CHECKING:
    from psycopg2.extensions import connection as PgConnection

    from hospital_ops.sources.spec import Source

log = logging.getLogger(__name__)

HIS_KINDS = ("sql", "fhir")


class HisConfigurationError(ValueError):
    """HIS_KIND or its companion settings are wrong (the message says which and how to fix it)."""


def his_kind() -> str:
    kind = (os.environ.get("HIS_KIND") or "sql").strip().lower()
    if kind not in HIS_KINDS:
        raise HisConfigurationError(f"HIS_KIND={kind!r}: must be one of {', '.join(HIS_KINDS)}")
    return kind


def fhir_export_dir() -> Path | None:
    value = os.environ.get("HIS_FHIR_DIR")
    return Path(value) if value else None


BULK_WATERMARK = "bulk_export"


FHIR_CONNECTION = "his_fhir"  # the Airflow connection of the FHIR server


@dataclass(frozen=True)
class FhirServerSettings:
    """Where the FHIR server is and how to authenticate: a bearer token, or SMART Backend Services
    (client id, token endpoint, PEM private key given as text or as a file, its `kid`).

    From the Airflow connection `his_fhir` (`from_connection`; conn type `http`): host (with its scheme
    and path, or scheme in `schema`) and port → the base URL; password → the bearer token; login → the
    SMART client id; extra `{"token_url": …, "private_key": "<PEM>" | "private_key_file": …,
    "key_id": …, "group": …}`. Without that connection, from the environment (`from_env`):
    HIS_FHIR_URL, HIS_FHIR_TOKEN, HIS_FHIR_CLIENT_ID, HIS_FHIR_TOKEN_URL, HIS_FHIR_PRIVATE_KEY_FILE,
    HIS_FHIR_KEY_ID, HIS_FHIR_GROUP."""

    url: str
    token: str | None = None
    client_id: str | None = None
    token_url: str | None = None
    private_key: str | None = field(default=None, repr=False)
    private_key_file: str | None = None
    key_id: str | None = None
    group: str | None = None

    @classmethod
    def from_env(cls) -> FhirServerSettings | None:
        url = os.environ.get("HIS_FHIR_URL")
        if not url:
            return None
        env = {name: os.environ.get(f"HIS_FHIR_{name.upper()}") or None
               for name in ("token", "client_id", "token_url", "private_key_file", "key_id", "group")}
        return cls(url=url, **env)

    @classmethod
    def from_connection(cls, *, host: str | None, port: int | None, schema: str | None, login: str | None,
                        password: str | None, extra: Mapping[str, Any] | None) -> FhirServerSettings:
        from hospital_ops.extract.api import endpoint_from_connection

        url = endpoint_from_connection(host, port, schema)
        if not url:
            raise HisConfigurationError(f"Airflow connection {FHIR_CONNECTION!r}: no host (the FHIR server's base URL)")
        extra = extra or {}
        return cls(url=url, token=None if login else password or None, client_id=login or None,
                   token_url=extra.get("token_url"), private_key=extra.get("private_key"),
                   private_key_file=extra.get("private_key_file"), key_id=extra.get("key_id"),
                   group=extra.get("group"))

    def client(self) -> BulkDataClient:
        smart = None
        if self.client_id:
            if not self.token_url or not (self.private_key or self.private_key_file):
                raise HisConfigurationError(
                    "SMART Backend Services needs the client id, the token URL and the private key "
                    "(HIS_FHIR_CLIENT_ID, HIS_FHIR_TOKEN_URL, HIS_FHIR_PRIVATE_KEY_FILE; or the connection "
                    f"{FHIR_CONNECTION!r}: login, extra token_url and private_key or private_key_file)")
            pem = self.private_key.encode() if self.private_key else Path(str(self.private_key_file)).read_bytes()
            smart = SmartBackend(self.client_id, self.token_url, pem, key_id=self.key_id)
        return BulkDataClient(self.url, token=self.token, smart=smart)


def fhir_server(server: FhirServerSettings | None = None) -> tuple[str | None, BulkDataClient | None]:
    """The FHIR server's base URL and a Bulk Data client for it: from `server` (the Airflow
    connection), else from the environment; (None, None) without either."""
    server = server or FhirServerSettings.from_env()
    if server is None:
        return None, None
    return server.url, server.client()


def _entries(folder_root: Path, source: Source, business_date: date) -> list[dict]:
    entries = plan_extract(folder_root, source, business_date, business_date - timedelta(days=1))
    return [{"entity": e.entity, "path": str(e.path), "relative_path": e.relative_path,
             "folder_date": e.folder_date.isoformat()} for e in entries]


def extract_his_fhir(conn: PgConnection, *, business_date: date, export_dir: Path | None,
                     server: FhirServerSettings | None = None) -> dict:
    """Map the export in `export_dir` (or tonight's Bulk export of the FHIR server: `server`, else
    HIS_FHIR_URL) to this night's landing folders; the pipeline's extract result."""
    ensure_raw_schema(conn, FHIR_SOURCE)
    landing_dir = settings().landing_dir
    transaction_time = None
    server = server or FhirServerSettings.from_env()
    url, client = fhir_server(server)
    if client is not None:
        from hospital_ops.extract.sql import load_watermarks

        previous = load_watermarks(conn, FHIR_SOURCE.name, business_date).get(BULK_WATERMARK)
        since = previous.replace(microsecond=0).isoformat() + "Z" if previous else None
        export_dir = settings().var_dir / "fhir_exports" / business_date.isoformat()
        group = server.group if server else None
        export = client.export(export_dir, level="group" if group else "system", group_id=group,
                               types=[*MAPPED_TYPES, *REFERENCE_TYPES], since=since)
        transaction_time = export.transaction_time
        log.info("%s: Bulk export since %s: %d resources, %d error issues", url, since, export.resources,
                 export.error_issues)
    assert export_dir is not None
    landing = fhir_export_to_landing(export_dir, landing_dir, business_date, key=pseudonym_key(),
                                     tz=hospital_timezone())
    return {
        "files": _entries(landing_dir, HIS_SOURCE, business_date),
        "fhir_files": _entries(landing_dir, FHIR_SOURCE, business_date),
        "watermarks": {},
        "fhir_transaction_time": transaction_time,
        "fhir_export_dir": str(export_dir) if client is not None else None,
        "fhir": {"resources": dict(landing.read.by_type), "skipped_types": dict(landing.read.skipped_types),
                 "malformed": len(landing.read.malformed), "unmapped_department_encounters":
                     landing.unmapped_encounters},
    }


def load_his_fhir_detail(conn: PgConnection, extracted: dict, *, business_date: date, run_id: str) -> dict | None:
    """Land the `his_fhir` files of a FHIR night, then remove both landing folders."""
    if "fhir_files" not in extracted:
        return None
    entries = [ManifestEntry(m["entity"], Path(m["path"]), m["relative_path"], date.fromisoformat(m["folder_date"]))
               for m in extracted["fhir_files"]]
    night = load_night(conn, FHIR_SOURCE, entries, run_id=run_id, batch_date=business_date, key=pseudonym_key())
    if extracted.get("fhir_transaction_time"):  # the next night's _since, once this one has landed
        from datetime import datetime

        from hospital_ops.extract.sql import save_watermarks

        stamp = datetime.fromisoformat(extracted["fhir_transaction_time"])
        stamp = stamp.astimezone(UTC).replace(tzinfo=None) if stamp.tzinfo else stamp
        save_watermarks(conn, FHIR_SOURCE.name, business_date, {BULK_WATERMARK: stamp}, run_id=run_id)
    if extracted.get("fhir_export_dir"):  # the downloaded export holds personal data in clear
        shutil.rmtree(extracted["fhir_export_dir"], ignore_errors=True)
    for source in (HIS_SOURCE, FHIR_SOURCE):
        folder = settings().landing_dir / source.name / business_date.isoformat()
        shutil.rmtree(folder, ignore_errors=True)
    return night.as_dict()
