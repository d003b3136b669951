"""FHIR Bulk Data Access 2.0 client: `$export` → a folder of NDJSON the FHIR reader takes whole.

    kick-off   GET <base>/$export | <base>/Group/<id>/$export | <base>/Patient/$export
               ?_type=…&_since=<previous export's transactionTime>  (Prefer: respond-async) → 202 + status URL
    poll       GET <status URL>: 202 with X-Progress (logged) and Retry-After (honoured) until 200 + manifest
    download   every `output` file, streamed to disk (gzip accepted), each written aside and renamed when whole;
               every `error` file (OperationOutcome) kept as `_errors_*.ndjson` and its issues counted
    finish     manifest.json written beside the files (its transactionTime is the next `_since`), DELETE the job

Authentication: a bearer token, or SMART Backend Services (a JWT client assertion signed RS384/ES384
with the client's private key, exchanged at the token URL for an access token; PyJWT signs it).
Faults: 429 and 5xx retried with exponential back-off (urllib3 `Retry`, honouring Retry-After); any other
4xx is a `BulkExportError` naming the URL, status and the server's OperationOutcome; a download URL that
expired (403/404/410) is re-requested from a fresh manifest; a cut connection retries the file. A night
interrupted after kick-off resumes: the status URL is kept in `_job.json` in the target folder, the next
attempt polls that job instead of starting another, and files already whole are not fetched again (each
file is written under its manifest position, so nothing is duplicated).

`requests` + urllib3 are used as the survey API client does; there is no kept Python Bulk Data client on
the package index that covers kick-off levels, error files and resume (so the protocol is written here).
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

log = logging.getLogger(__name__)

JOB_FILE = "_job.json"
MANIFEST_FILE = "manifest.json"
_TIMEOUT = (10, 120)
_CHUNK = 1 << 16


class BulkExportError(RuntimeError):
    """The server refused or failed the export (the message names URL, status and the server's reason)."""


@dataclass(frozen=True)
class SmartBackend:
    """SMART Backend Services credentials: client id, token endpoint and the private key (PEM)."""

    client_id: str
    token_url: str
    private_key_pem: bytes
    key_id: str | None = None
    algorithm: str = "RS384"
    scope: str = "system/*.read"


@dataclass
class BulkExport:
    folder: Path
    transaction_time: str
    files: list[Path] = field(default_factory=list)
    resources: int = 0
    error_issues: int = 0
    progress: list[str] = field(default_factory=list)


def _session(retries: int, backoff: float) -> requests.Session:
    retry = Retry(total=retries, connect=retries, read=retries, status=retries, backoff_factor=backoff,
                  status_forcelist=(429, 500, 502, 503, 504), allowed_methods=frozenset({"GET", "POST", "DELETE"}),
                  respect_retry_after_header=True, raise_on_status=False)
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    return session


def _reason(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    issues = body.get("issue") if isinstance(body, dict) else None
    if issues:
        return "; ".join(str(i.get("diagnostics") or i.get("code")) for i in issues if isinstance(i, dict))
    return json.dumps(body)[:300]


def _retry_after(value: str | None, default: float) -> float:
    if not value:
        return default
    try:
        return max(float(value), 0.0)
    except ValueError:
        try:
            return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
        except (TypeError, ValueError):
            return default


class BulkDataClient:
    def __init__(self, base_url: str, *, token: str | None = None, smart: SmartBackend | None = None,
                 retries: int = 5, backoff: float = 0.5, max_poll_seconds: float = 3600.0,
                 max_wait: float = 120.0, sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_url = base_url.rstrip("/")
        self.token, self.smart = token, smart
        self.session = _session(retries, backoff)
        self.max_poll_seconds, self.max_wait, self.sleep = max_poll_seconds, max_wait, sleep
        self._access_token: str | None = None

    # -- authentication
    def _headers(self, **extra: str) -> dict[str, str]:
        headers = {"Accept": "application/fhir+json", **extra}
        token = self.token or self._smart_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _smart_token(self, renew: bool = False) -> str | None:
        if self.smart is None:
            return None
        if self._access_token and not renew:
            return self._access_token
        import jwt

        now = int(time.time())
        assertion = jwt.encode(
            {"iss": self.smart.client_id, "sub": self.smart.client_id, "aud": self.smart.token_url,
             "exp": now + 300, "jti": uuid.uuid4().hex},
            self.smart.private_key_pem, algorithm=self.smart.algorithm,
            headers={"kid": self.smart.key_id} if self.smart.key_id else None)
        response = self.session.post(self.smart.token_url, timeout=_TIMEOUT, data={
            "grant_type": "client_credentials", "scope": self.smart.scope,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion})
        if response.status_code != 200:
            raise BulkExportError(f"POST {self.smart.token_url}: {response.status_code} {response.text[:300]}")
        self._access_token = str(response.json()["access_token"])
        return self._access_token

    def _get(self, url: str, **kwargs: Any) -> requests.Response:
        response = self.session.get(url, headers=self._headers(**kwargs.pop("headers", {})), timeout=_TIMEOUT,
                                    **kwargs)
        if response.status_code == 401 and self.smart is not None:  # the access token expired: a new one
            self._smart_token(renew=True)
            response = self.session.get(url, headers=self._headers(), timeout=_TIMEOUT, **kwargs)
        return response

    # -- the export
    def kick_off(self, *, level: str = "system", group_id: str | None = None, types: list[str] | None = None,
                 since: str | None = None) -> str:
        if level == "system":
            url = f"{self.base_url}/$export"
        elif level == "patient":
            url = f"{self.base_url}/Patient/$export"
        elif level == "group" and group_id:
            url = f"{self.base_url}/Group/{group_id}/$export"
        else:
            raise ValueError(f"export level {level!r} (group needs a group id): system, patient or group")
        params = {}
        if types:
            params["_type"] = ",".join(types)
        if since:
            params["_since"] = since
        response = self._get(url, params=params, headers={"Prefer": "respond-async"})
        if response.status_code != 202 or not response.headers.get("Content-Location"):
            raise BulkExportError(f"kick-off GET {response.url}: {response.status_code} {_reason(response)}")
        return response.headers["Content-Location"]

    def poll(self, status_url: str, progress: list[str]) -> dict:
        started = time.monotonic()
        while True:
            response = self._get(status_url)
            if response.status_code == 200:
                return response.json()
            if response.status_code != 202:
                raise BulkExportError(f"status GET {status_url}: {response.status_code} {_reason(response)}")
            note = response.headers.get("X-Progress")
            if note:
                progress.append(note)
                log.info("FHIR export %s: %s", status_url, note)
            if time.monotonic() - started > self.max_poll_seconds:
                raise BulkExportError(f"status {status_url}: not complete after {self.max_poll_seconds:.0f} s")
            self.sleep(min(_retry_after(response.headers.get("Retry-After"), 1.0), self.max_wait))

    def _download(self, url: str, target: Path) -> None:
        part = target.with_name(f".{target.name}.part")
        with self._get(url, stream=True, headers={"Accept": "application/fhir+ndjson",
                                                  "Accept-Encoding": "gzip"}) as response:
            if response.status_code in (403, 404, 410):
                raise _Expired(f"{url}: {response.status_code} {_reason(response)}")
            if response.status_code != 200:
                raise BulkExportError(f"download GET {url}: {response.status_code} {_reason(response)}")
            with part.open("wb") as handle:
                for chunk in response.iter_content(_CHUNK):  # gzip Content-Encoding decoded as it streams
                    handle.write(chunk)
        os.replace(part, target)

    def export(self, folder: Path, *, level: str = "system", group_id: str | None = None,
               types: list[str] | None = None, since: str | None = None) -> BulkExport:
        """Run (or resume) an export into `folder`; return what was downloaded."""
        folder.mkdir(parents=True, exist_ok=True)
        job_file = folder / JOB_FILE
        progress: list[str] = []
        if job_file.exists():
            status_url = json.loads(job_file.read_text())["status_url"]
            log.info("FHIR export: resuming job %s", status_url)
        else:
            status_url = self.kick_off(level=level, group_id=group_id, types=types, since=since)
            job_file.write_text(json.dumps({"status_url": status_url, "since": since, "types": types}))
        manifest = self.poll(status_url, progress)
        result = BulkExport(folder, str(manifest["transactionTime"]), progress=progress)
        for kind, prefix in (("output", ""), ("error", "_errors_")):
            position = 0
            while position < len(manifest.get(kind) or []):
                item = manifest[kind][position]
                target = folder / f"{prefix}{position + 1:04d}_{item.get('type', 'Resource')}.ndjson"
                if not target.exists():
                    try:
                        self._download(str(item["url"]), target)
                    except _Expired as exc:  # a fresh manifest carries fresh links; try this file again
                        log.warning("FHIR export: %s; fetching the manifest again", exc)
                        fresh = self.poll(status_url, progress)
                        if fresh.get(kind, [])[position].get("url") == item["url"] and \
                                getattr(self, "_expired_twice", None) == item["url"]:
                            raise BulkExportError(f"download {item['url']} keeps failing: {exc}") from None
                        self._expired_twice = item["url"]
                        manifest = fresh
                        continue
                    except requests.exceptions.RequestException as exc:  # cut mid-file: once more
                        log.warning("FHIR export: %s interrupted (%s), fetching it again", item["url"], exc)
                        self._download(str(item["url"]), target)
                lines = sum(1 for line in target.open("rb") if line.strip())
                if kind == "output":
                    result.files.append(target)
                    result.resources += lines
                else:
                    result.error_issues += lines
                position += 1
        (folder / MANIFEST_FILE).write_text(json.dumps(manifest))
        response = self.session.delete(status_url, headers=self._headers(), timeout=_TIMEOUT)
        if response.status_code not in (200, 202, 204, 404):
            log.warning("FHIR export: DELETE %s answered %s", status_url, response.status_code)
        job_file.unlink(missing_ok=True)
        if result.error_issues:
            log.warning("FHIR export: %d OperationOutcome issues in the error files (kept as _errors_*.ndjson)",
                        result.error_issues)
        log.info("FHIR export %s: %d files, %d resources, transactionTime %s", status_url, len(result.files),
                 result.resources, result.transaction_time)
        return result


class _Expired(RuntimeError):
    pass
