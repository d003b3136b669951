"""A local FHIR Bulk Data Access 2.0 server, for the tests and the demo: `$export` over resources it holds.

    GET  /$export | /Patient/$export | /Group/<id>/$export   ?_type=A,B&_since=<instant>
         Accept: application/fhir+json, Prefer: respond-async
         → 202, Content-Location: <base>/jobs/<job>
    GET  /jobs/<job>  → 202 (X-Progress, Retry-After) while running, then 200 with the manifest
         {transactionTime, request, requiresAccessToken, output: [{type, url, count}], error: [...]}
    GET  /files/<job>/<name>  → the NDJSON (gzip when the client accepts it), streamed
    DELETE /jobs/<job>  → 202
    POST /token  SMART Backend Services: client_credentials with a JWT client assertion (RS384/ES384)
         signed by the registered key → {"access_token", "token_type": "bearer", "expires_in"}

`_since` keeps resources whose `meta.lastUpdated` is after it (a resource without one is stamped when
loaded). A Patient-level export keeps Patients and resources that point at a Patient; a Group export
keeps those of the Group's members. Resources whose id is listed in `errors_for` yield an
OperationOutcome in the error file.

Faults (`inject`): 429 with Retry-After, 500, a download URL that has expired (410 until the manifest is
fetched again), a connection cut mid-file. Every request is recorded in `requests`.

Built on the standard library's ThreadingHTTPServer (like `survey_api.py`): a stand-in for a real
server, no dependency, starts on a free port in milliseconds.
"""

from __future__ import annotations

import gzip
import json
import secrets
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qs, urlsplit


@dataclass
class Fault:
    kind: str  # rate_limit | error | expired | cut
    path_contains: str = ""
    times: int = 1
    retry_after: int = 1


@dataclass
class _Job:
    request: str
    files: dict[str, bytes]  # name -> NDJSON
    output: list[dict]
    errors: list[dict]
    transaction_time: str
    polls_before_ready: int
    polls: int = 0
    deleted: bool = False
    expired: set[str] = field(default_factory=set)


def _stamp(resource: dict, default: str) -> str:
    return str((resource.get("meta") or {}).get("lastUpdated") or default)


class FhirBulkServer:
    def __init__(self, resources: Iterable[dict], *, token: str | None = None, client_id: str | None = None,
                 public_key_pem: bytes | None = None, groups: dict[str, list[str]] | None = None,
                 polls_before_ready: int = 2, file_lines: int = 500, errors_for: set[str] | None = None,
                 loaded_at: str = "2026-01-01T00:00:00+00:00") -> None:
        self.resources = [dict(r) for r in resources]
        for resource in self.resources:
            resource.setdefault("meta", {}).setdefault("lastUpdated", loaded_at)
        self.token, self.client_id, self.public_key_pem = token, client_id, public_key_pem
        self.issued: set[str] = set()
        self.groups = groups or {}
        self.polls_before_ready, self.file_lines = polls_before_ready, file_lines
        self.errors_for = errors_for or set()
        self.jobs: dict[str, _Job] = {}
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, int]] = []
        self.seen_assertions: set[str] = set()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self.now = lambda: datetime.now(UTC).isoformat(timespec="seconds")

    # -- lifecycle
    def __enter__(self) -> Self:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server._handle(self, "GET")

            def do_POST(self) -> None:
                server._handle(self, "POST")

            def do_DELETE(self) -> None:
                server._handle(self, "DELETE")

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/fhir"

    def inject(self, kind: str, path_contains: str = "", times: int = 1, retry_after: int = 1) -> None:
        self.faults.append(Fault(kind, path_contains, times, retry_after))

    def update(self, resource: dict, last_updated: str) -> None:
        """A resource changed in the HIS: replaced (same type and id) with a new lastUpdated."""
        resource = dict(resource, meta={"lastUpdated": last_updated})
        self.resources = [r for r in self.resources
                          if (r["resourceType"], r.get("id")) != (resource["resourceType"], resource.get("id"))]
        self.resources.append(resource)

    # -- HTTP
    def _fault(self, path: str, kinds: tuple[str, ...]) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.kind in kinds and fault.times > 0 and fault.path_contains in path:
                    fault.times -= 1
                    return fault
        return None

    def _send(self, handler: BaseHTTPRequestHandler, status: int, body: bytes = b"",
              headers: dict[str, str] | None = None) -> None:
        self.requests.append((handler.command, handler.path, status))  # before the answer: a test sees it
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _outcome(self, handler: BaseHTTPRequestHandler, status: int, text: str) -> None:
        body = json.dumps({"resourceType": "OperationOutcome",
                           "issue": [{"severity": "error", "code": "processing", "diagnostics": text}]}).encode()
        self._send(handler, status, body, {"Content-Type": "application/fhir+json"})

    def _authorised(self, handler: BaseHTTPRequestHandler) -> bool:
        if self.token is None and self.public_key_pem is None:
            return True
        header = handler.headers.get("Authorization") or ""
        given = header[7:] if header.startswith("Bearer ") else None
        return given is not None and (given == self.token or given in self.issued)

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        split = urlsplit(handler.path)
        path, query = split.path, parse_qs(split.query)
        if (fault := self._fault(path, ("rate_limit",))) is not None:
            return self._send(handler, 429, b"", {"Retry-After": str(fault.retry_after)})
        if self._fault(path, ("error",)) is not None:
            return self._outcome(handler, 500, "simulated server error")
        if path.endswith("/token") and method == "POST":
            return self._token(handler)
        if not self._authorised(handler):
            return self._outcome(handler, 401, "missing or invalid bearer token")
        if path.endswith("/$export") and method == "GET":
            return self._kick_off(handler, path, query)
        if path.startswith("/fhir/jobs/"):
            job_id = path.rsplit("/", 1)[-1]
            job = self.jobs.get(job_id)
            if job is None or job.deleted:
                return self._outcome(handler, 404, f"no export job {job_id}")
            if method == "DELETE":
                job.deleted = True
                return self._send(handler, 202)
            return self._status(handler, job_id, job)
        if path.startswith("/fhir/files/") and method == "GET":
            _, _, job_id, name = path.rsplit("/", 3)
            job = self.jobs.get(job_id)
            if job is None or name not in job.files:
                return self._outcome(handler, 404, f"no file {name}")
            if name in job.expired or self._fault(path, ("expired",)) is not None:
                job.expired.add(name)
                return self._outcome(handler, 410, "download link expired: fetch the manifest again")
            return self._file(handler, path, job.files[name])
        return self._outcome(handler, 404, f"unknown path {path}")

    def _token(self, handler: BaseHTTPRequestHandler) -> None:
        import jwt

        length = int(handler.headers.get("Content-Length") or 0)
        form = parse_qs(handler.rfile.read(length).decode())
        assertion = (form.get("client_assertion") or [""])[0]
        if (form.get("grant_type") or [""])[0] != "client_credentials" or not assertion or self.public_key_pem is None:
            return self._send(handler, 400, json.dumps({"error": "invalid_request"}).encode(),
                              {"Content-Type": "application/json"})
        try:
            claims = jwt.decode(assertion, self.public_key_pem, algorithms=["RS384", "ES384"],
                                audience=f"{self.url}/token", issuer=self.client_id)
        except jwt.PyJWTError as exc:
            return self._send(handler, 401, json.dumps({"error": "invalid_client", "error_description": str(exc)})
                              .encode(), {"Content-Type": "application/json"})
        if claims.get("sub") != self.client_id or claims.get("jti") in self.seen_assertions:
            return self._send(handler, 401, json.dumps({"error": "invalid_client"}).encode(),
                              {"Content-Type": "application/json"})
        self.seen_assertions.add(claims["jti"])
        token = secrets.token_urlsafe(24)
        self.issued.add(token)
        self._send(handler, 200, json.dumps({"access_token": token, "token_type": "bearer", "expires_in": 300,
                                             "scope": "system/*.read"}).encode(), {"Content-Type": "application/json"})

    def _kick_off(self, handler: BaseHTTPRequestHandler, path: str, query: dict[str, list[str]]) -> None:
        if handler.headers.get("Prefer") != "respond-async":
            return self._outcome(handler, 400, "Prefer: respond-async is required")
        types = [t for value in query.get("_type", []) for t in value.split(",") if t]
        since = (query.get("_since") or [None])[0]
        chosen = self.resources
        if "/Group/" in path:
            group = path.split("/Group/", 1)[1].split("/", 1)[0]
            if group not in self.groups:
                return self._outcome(handler, 404, f"no Group {group}")
            chosen = [r for r in chosen if self._patient_of(r) in set(self.groups[group])]
        elif path.endswith("/Patient/$export"):
            chosen = [r for r in chosen if self._patient_of(r) is not None]
        if types:
            chosen = [r for r in chosen if r["resourceType"] in types]
        if since:
            try:
                after = datetime.fromisoformat(since)
            except ValueError:
                return self._outcome(handler, 400, f"_since {since!r} is not a FHIR instant")
            chosen = [r for r in chosen if datetime.fromisoformat(_stamp(r, "")) > after]
        job_id = uuid.uuid4().hex
        files: dict[str, bytes] = {}
        output: list[dict] = []
        by_type: dict[str, list[dict]] = {}
        errors: list[dict] = []
        for resource in chosen:
            if resource.get("id") in self.errors_for:
                errors.append({"resourceType": "OperationOutcome", "issue": [{
                    "severity": "error", "code": "processing",
                    "diagnostics": f"{resource['resourceType']}/{resource['id']} could not be exported"}]})
                continue
            by_type.setdefault(resource["resourceType"], []).append(resource)
        for rtype, items in sorted(by_type.items()):
            for part in range(0, len(items), self.file_lines):
                name = f"{rtype}_{part // self.file_lines + 1}.ndjson"
                chunk = items[part:part + self.file_lines]
                files[name] = "".join(json.dumps(r) + "\n" for r in chunk).encode()
                output.append({"type": rtype, "url": f"{self.url}/files/{job_id}/{name}", "count": len(chunk)})
        error_out = []
        if errors:
            files["errors.ndjson"] = "".join(json.dumps(e) + "\n" for e in errors).encode()
            error_out.append({"type": "OperationOutcome", "url": f"{self.url}/files/{job_id}/errors.ndjson",
                              "count": len(errors)})
        self.jobs[job_id] = _Job(handler.path, files, output, error_out, self.now(), self.polls_before_ready)
        self._send(handler, 202, b"", {"Content-Location": f"{self.url}/jobs/{job_id}"})

    @staticmethod
    def _patient_of(resource: dict) -> str | None:
        if resource["resourceType"] == "Patient":
            return str(resource.get("id"))
        for key in ("subject", "patient", "beneficiary"):
            ref = resource.get(key)
            if isinstance(ref, dict) and str(ref.get("reference", "")).startswith("Patient/"):
                return ref["reference"].split("/", 1)[1]
        return None

    def _status(self, handler: BaseHTTPRequestHandler, job_id: str, job: _Job) -> None:
        job.polls += 1
        if job.polls <= job.polls_before_ready:
            share = int(100 * job.polls / (job.polls_before_ready + 1))
            return self._send(handler, 202, b"", {"X-Progress": f"{share}% exported", "Retry-After": "1"})
        job.expired.clear()  # a fresh manifest: fresh links
        manifest = {"transactionTime": job.transaction_time, "request": job.request, "requiresAccessToken":
                    self.token is not None or self.public_key_pem is not None,
                    "output": job.output, "error": job.errors}
        self._send(handler, 200, json.dumps(manifest).encode(), {"Content-Type": "application/json",
                                                                 "Expires": "Thu, 01 Jan 2099 00:00:00 GMT"})

    def _file(self, handler: BaseHTTPRequestHandler, path: str, body: bytes) -> None:
        gzipped = "gzip" in (handler.headers.get("Accept-Encoding") or "")
        payload = gzip.compress(body) if gzipped else body
        headers = {"Content-Type": "application/fhir+ndjson"}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        if self._fault(path, ("cut",)) is not None:  # promise the whole file, send half, hang up
            self.requests.append(("GET", path, -1))
            handler.send_response(200)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload[: len(payload) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            return
        self._send(handler, 200, payload, headers)
