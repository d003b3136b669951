"""Incremental extraction of a paged JSON API (the survey platform) by `updated_at`, into landing CSVs.

For business date N every entity is read with

    GET <base>/api/v1/<entity>?updated_since=<watermark>&updated_before=<start of N + 1>&limit=…&cursor=…

following `next_cursor` until it is null. The window is the SQL extractor's (`hospital_ops.extract.sql`):
the lower bound is the largest `updated_at` extracted by a night *before* N (`raw._watermarks`, the
one watermark table of every source kind, keyed by source and entity), the upper bound the end of the
business date, so a rerun of night N asks for the same records. Watermarks are saved only after the
load committed (`pipeline.load`), so a failed night is simply read again.
As for SQL sources, `updated_since` is the watermark less the overlap (`watermark_overlap`), so a record
that reached the platform late with an `updated_at` at or just before the watermark is still read; a
version (business key, `updated_at`) an earlier night landed is skipped (`landed_versions`).

Transport is `requests` with urllib3's `Retry` mounted on the session: 5xx answers, connection errors
and read timeouts are retried with exponential backoff, and a 429 waits for its `Retry-After` (the
platform's own rate limit, capped at `RETRY_AFTER_CAP` seconds: a platform asking for an hour does not
hold the night) before retrying; every request has a (connect, read) timeout, and each entity has an
overall deadline (`ENTITY_DEADLINE`), after which the extract fails with a clear error. The token is
sent as `Authorization: Bearer …`. A 401/403/404/400, or retries exhausted, is an `ApiExtractError`.
The page size, timeouts, retries and deadline are a source's `ApiSettings` (its Airflow connection's
extra, else <CONNECTION>_PAGE_SIZE, …; by default the constants below).

Records are written as they arrive, in the entity's column order (missing fields blank, unknown fields
ignored), through `LandingFolder` (the night's folder is replaced whole on success). Before writing:
- a record already seen with the same id and `updated_at` (a page the API served twice) is skipped;
- `free_text` columns are scrubbed of phone and national-ID numbers (`hospital_ops.extract.scrub`),
  so those numbers never reach disk;
- timestamps with an offset are converted to hospital local time (Asia/Shanghai) without offset, as
  the loader and the HIS use them; a value that is not a timestamp is written as it came, and the
  loader quarantines the record with the reason (nothing is dropped here).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from hospital_ops.config import pseudonym_key
from hospital_ops.extract import LandingFolder, landing_text
from hospital_ops.extract.scrub import scrub
from hospital_ops.extract.sql import (
    night_cutoff,
    read_from,
    version_key,
    watermark_overlap,
)
from hospital_ops.sources.spec import Column, Entity, Source

if TYPE_CHECKING:
    from urllib3 import BaseHTTPResponse

log = logging.getLogger(__name__)

API_PATH = "/api/v1/"
HOSPITAL_TZ = ZoneInfo("Asia/Shanghai")
WATERMARK_FIELD = "updated_at"
PAGE_SIZE = 500
TIMEOUT = (5.0, 60.0)  # seconds: connect, read
RETRY_STATUSES = (429, 500, 502, 503, 504)
MAX_SAME_CURSOR = 3  # an API that keeps answering with the same cursor is broken, not slow
RETRY_AFTER_CAP = 60.0  # seconds: the longest a 429's Retry-After is honoured
ENTITY_DEADLINE = 30 * 60.0  # seconds: the longest one entity's pages may take, retries included


class ApiExtractError(RuntimeError):
    """The API refused the extract (auth, bad request, unknown entity) or kept failing after retries."""


class CappedRetry(Retry):
    """urllib3's Retry with the wait a Retry-After header asks for capped (urllib3 honours any value)."""

    def __init__(self, *args: Any, retry_after_cap: float = RETRY_AFTER_CAP, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after_cap = retry_after_cap

    def new(self, **kwargs: Any) -> Self:
        retry = super().new(**kwargs)
        retry.retry_after_cap = self.retry_after_cap
        return retry

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, self.retry_after_cap)


def default_retry(total: int = 5, backoff_factor: float = 0.5, retry_after_cap: float = RETRY_AFTER_CAP) -> Retry:
    """Retries on 5xx/429 (honouring Retry-After up to `retry_after_cap` seconds), connection errors and
    read timeouts, for GET only."""
    return CappedRetry(total=total, connect=total, read=total, status=total, backoff_factor=backoff_factor,
                       backoff_max=60, status_forcelist=RETRY_STATUSES, allowed_methods=frozenset({"GET"}),
                       respect_retry_after_header=True, raise_on_status=True, retry_after_cap=retry_after_cap)


def api_session(token: str | None, retry: Retry | None = None) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry or default_retry())
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["Accept"] = "application/json"
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    return session


@dataclass(frozen=True)
class ApiSettings:
    """How an API source is read: page size, (connect, read) timeouts in seconds, retries with their backoff
    and Retry-After cap, and each entity's overall deadline in seconds; the defaults are this module's constants.

    From the source's Airflow connection extra (`from_mapping`: `{"page_size": 200, "retries": 3, …}`, the
    field names below), else from the environment (`from_env`: <CONNECTION>_PAGE_SIZE, <CONNECTION>_RETRIES,
    …, e.g. SURVEY_API_PAGE_SIZE)."""

    page_size: int = PAGE_SIZE
    connect_timeout: float = TIMEOUT[0]
    read_timeout: float = TIMEOUT[1]
    retries: int = 5
    backoff_factor: float = 0.5
    retry_after_cap: float = RETRY_AFTER_CAP
    deadline: float = ENTITY_DEADLINE

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, where: str = "API settings") -> ApiSettings:
        """The settings named in `values` (others keep their default); a value of the wrong type is an error
        naming `where` and the setting. Keys that are not settings (a connection's other extras) are ignored."""
        types = {f.name: (int if f.type == "int" else float) for f in fields(cls)}
        chosen: dict[str, Any] = {}
        for name, kind in types.items():
            if values.get(name) in (None, ""):
                continue
            try:
                chosen[name] = kind(values[name])
            except (TypeError, ValueError):
                what = "an integer" if kind is int else "a number"
                raise ValueError(f"{where}: {name}={values[name]!r} is not {what}") from None
            if chosen[name] < 0 or (chosen[name] == 0 and name not in ("retries", "backoff_factor")):
                raise ValueError(f"{where}: {name}={values[name]!r} must be positive")
        return cls(**chosen)

    @classmethod
    def from_env(cls, connection: str) -> ApiSettings:
        prefix = f"{connection.upper()}_"
        return cls.from_mapping({f.name: os.environ.get(prefix + f.name.upper()) for f in fields(cls)},
                                where=f"{prefix}* environment")

    def extract_options(self) -> dict[str, Any]:
        """The keyword arguments of `extract_api_source`."""
        return {"page_size": self.page_size, "timeout": (self.connect_timeout, self.read_timeout),
                "retry": default_retry(self.retries, self.backoff_factor, self.retry_after_cap),
                "deadline": self.deadline}


def endpoint_from_connection(host: str | None, port: int | None, schema: str | None) -> str | None:
    """An API base URL from an Airflow connection's fields, the way Airflow's HttpHook reads them.

    `schema` is the URL scheme (http or https; default http); `host` may also carry a scheme and a
    path prefix (`https://survey.example.org/platform`).
    """
    if not host:
        return None
    if "://" not in host:
        host = f"{schema or 'http'}://{host}"
    parts = urlsplit(host)
    netloc = parts.netloc if port is None or parts.port else f"{parts.hostname}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


@dataclass
class ApiExtraction:
    source: str
    business_date: date
    cutoff: datetime  # exclusive upper bound, local time
    folder: Path
    paths: list[Path] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # entity -> rows written (entities with rows only)
    max_updated_at: dict[str, datetime] = field(default_factory=dict)  # entity -> new watermark candidate
    watermarks: dict[str, datetime | None] = field(default_factory=dict)  # entity -> lower bound used
    pages: dict[str, int] = field(default_factory=dict)  # entity -> pages fetched
    duplicates_skipped: dict[str, int] = field(default_factory=dict)  # entity -> records served twice
    already_landed: dict[str, int] = field(default_factory=dict)  # entity -> overlap records landed before


def _local(value: datetime) -> datetime:
    """Hospital local time without offset (a value without offset is taken as local already)."""
    return value.astimezone(HOSPITAL_TZ).replace(tzinfo=None) if value.tzinfo else value


def _api_instant(value: datetime) -> str:
    return value.replace(tzinfo=HOSPITAL_TZ).isoformat()


def _cell(column: Column, value: object) -> str:
    """One record field in landing text; a value of the wrong shape is kept for the loader to judge."""
    if value is None:
        return ""
    if column.type == "timestamp" and isinstance(value, str):
        try:
            return landing_text(_local(datetime.fromisoformat(value)))
        except ValueError:
            return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    text = landing_text(value)
    return scrub(text) if column.free_text else text


def _updated_at(record: Mapping) -> datetime | None:
    try:
        return _local(datetime.fromisoformat(str(record.get(WATERMARK_FIELD))))
    except ValueError:
        return None


def _get_page(session: requests.Session, url: str, params: dict[str, str | int],
              timeout: tuple[float, float]) -> dict:
    try:
        response = session.get(url, params=params, timeout=timeout)
    except requests.exceptions.RetryError as exc:
        raise ApiExtractError(f"GET {url}: still failing after retries: {exc}") from exc
    except requests.exceptions.RequestException as exc:
        raise ApiExtractError(f"GET {url}: {type(exc).__name__}: {exc}") from exc
    if response.status_code != 200:
        detail = response.text[:300]
        raise ApiExtractError(f"GET {url} answered {response.status_code}: {detail}")
    try:
        body = response.json()
    except ValueError as exc:
        raise ApiExtractError(f"GET {url}: answer is not JSON: {response.text[:200]!r}") from exc
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ApiExtractError(f"GET {url}: answer has no 'data' list: {str(body)[:200]}")
    return body


def _extract_entity(session: requests.Session, base_url: str, folder: LandingFolder, entity: Entity,
                    lower: datetime | None, cutoff: datetime, page_size: int, timeout: tuple[float, float],
                    extraction: ApiExtraction, landed: set[tuple[str, ...]], deadline: float) -> None:
    url = f"{base_url.rstrip('/')}{API_PATH}{entity.name}"
    started = time.monotonic()
    already = 0
    id_field = entity.business_key[0]
    params: dict[str, str | int] = {"updated_before": _api_instant(cutoff), "limit": page_size}
    if lower is not None:
        params["updated_since"] = _api_instant(lower)
    seen: set[tuple[str, str]] = set()
    cursors: dict[str, int] = {}
    highest: datetime | None = None
    pages = duplicates = 0
    cursor: str | None = None
    while True:
        if time.monotonic() - started > deadline:
            raise ApiExtractError(f"GET {url}: not finished within the {deadline:g} s deadline "
                                  f"({pages} pages read); the night's folder is not replaced")
        if cursor is not None:
            cursors[cursor] = cursors.get(cursor, 0) + 1
            if cursors[cursor] > MAX_SAME_CURSOR:
                raise ApiExtractError(f"GET {url}: cursor {cursor!r} served {MAX_SAME_CURSOR} times, "
                                      "the API's pagination is not advancing")
        body = _get_page(session, url, {**params, **({"cursor": cursor} if cursor else {})}, timeout)
        pages += 1
        for record in body["data"]:
            if not isinstance(record, dict):
                raise ApiExtractError(f"GET {url}: a record is not an object: {str(record)[:200]}")
            identity = (str(record.get(id_field)), str(record.get(WATERMARK_FIELD)))
            if identity in seen:  # the same version served twice (a page repeated)
                duplicates += 1
                continue
            seen.add(identity)
            stamp = _updated_at(record)
            if stamp is not None and stamp < cutoff and (highest is None or stamp > highest):
                highest = stamp
            if landed and stamp is not None and version_key(  # raw holds a personal key as its pseudonym
                    [folder.cell(entity.column(name), landing_text(record.get(name))) for name in entity.business_key],
                    stamp) in landed:
                already += 1  # read again by the overlap, landed by an earlier night
                continue
            folder.write(entity, [_cell(column, record.get(column.name)) for column in entity.columns])
        cursor = body.get("next_cursor")
        if not cursor:
            break
    extraction.pages[entity.name] = pages
    if already:
        extraction.already_landed[entity.name] = already
    if duplicates:
        extraction.duplicates_skipped[entity.name] = duplicates
        log.warning("%s: skipped %d records the API served twice", entity.raw_table, duplicates)
    if highest is not None:
        extraction.max_updated_at[entity.name] = highest


def extract_api_source(
    source: Source,
    base_url: str,
    token: str | None,
    landing_dir: Path,
    business_date: date,
    *,
    watermarks: Mapping[str, datetime | None],
    page_size: int = PAGE_SIZE,
    timeout: tuple[float, float] = TIMEOUT,
    retry: Retry | None = None,
    landed: Mapping[str, set[tuple[str, ...]]] | None = None,
    overlap: timedelta | None = None,
    deadline: float = ENTITY_DEADLINE,
    key: bytes | None = None,
) -> ApiExtraction:
    """Write every entity's records changed in the night's window as landing CSVs (see the module doc)."""
    cutoff = night_cutoff(business_date)
    overlap = watermark_overlap() if overlap is None else overlap
    landed = landed or {}
    key = pseudonym_key() if key is None else key  # personal columns are hashed before they are written
    extraction = ApiExtraction(source.name, business_date, cutoff, Path())
    with api_session(token, retry) as session, LandingFolder(landing_dir, source, business_date, key=key) as folder:
        for entity in sorted(source.entities, key=lambda e: (e.load_order, e.name)):
            lower = watermarks.get(entity.name)
            extraction.watermarks[entity.name] = lower
            _extract_entity(session, base_url, folder, entity, read_from(lower, overlap), cutoff, page_size, timeout,
                            extraction, landed.get(entity.name, set()), deadline)
        extraction.paths = folder.commit()
        extraction.rows = dict(folder.rows)
        extraction.folder = folder.final
    log.info("%s %s: %d records from %s in %d pages (window up to %s)", source.name, business_date,
             sum(extraction.rows.values()), base_url, sum(extraction.pages.values()), cutoff)
    return extraction
