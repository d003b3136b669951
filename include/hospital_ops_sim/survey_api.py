"""A local HTTP server that plays the survey platform's paged JSON API, for the demo and the tests.

    GET /api/v1/<entity>?updated_since=<ISO>&updated_before=<ISO>&cursor=<opaque>&limit=<n>
        Authorization: Bearer <token>
    → 200 {"data": [record, …], "next_cursor": "<opaque>" | null}

Records are served in (updated_at, id) order; `updated_since` is exclusive, `updated_before` is
exclusive; the cursor is keyset-based (the last (updated_at, id) served), so a page boundary does not
move when records change between requests. Timestamps are ISO 8601 with the +08:00 offset, as a
Chinese platform sends them. A wrong or missing token gets 401; an unknown entity 404; a bad
parameter 400.

Faults for tests (`inject`): a 5xx answer, a 429 with Retry-After, a slow answer (longer than the
client's read timeout), a page repeated (the next cursor points at the same page again), a corrupted
record (a field replaced by a bad value). Every request is recorded in `requests` (path, query,
Authorization header, status, time) so a test can see what the extractor did.

Built on the standard library's `http.server.ThreadingHTTPServer` in a daemon thread: it is only a
stand-in for a real platform, needs nothing installed and starts in milliseconds on a free port; a
web framework would add a dependency without adding anything the simulation needs.
"""

from __future__ import annotations

import base64
import bisect
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal, Self
from urllib.parse import parse_qs, urlsplit

from hospital_ops.sources.survey import SOURCE

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1/"
DEFAULT_LIMIT = 200
MAX_LIMIT = 1000
ID_FIELDS = {entity.name: entity.business_key[0] for entity in SOURCE.entities}

FaultKind = Literal["error", "rate_limit", "slow", "repeat_page", "corrupt"]


@dataclass
class Fault:
    """One misbehaviour, fired on the next `times` requests that match (entity, later pages only)."""

    kind: FaultKind
    entity: str | None = None  # None: any entity
    times: int = 1
    status: int = 500  # error
    retry_after: int = 1  # rate_limit: seconds in the Retry-After header
    delay: float = 0.0  # slow: seconds to wait before answering
    field_name: str = ""  # corrupt: the field of the page's first record to replace …
    bad_value: object = None  # … by this value
    later_pages_only: bool = False  # fire only on a request that carries a cursor

    def matches(self, entity: str, has_cursor: bool) -> bool:
        return (self.times > 0 and (self.entity is None or self.entity == entity)
                and (has_cursor or not self.later_pages_only))


@dataclass
class ServedRequest:
    path: str
    query: dict[str, str]
    authorization: str | None
    status: int
    at: float  # time.monotonic()


@contextmanager
def simulated_survey_api(records: Path, progress: Callable[[str], None] = log.info) -> Iterator[None]:
    """Serve the generated survey records on a local port while the block runs, and point the survey
    source at it (SURVEY_API_URL / SURVEY_API_TOKEN, which a DAG run started inside inherits), unless
    SURVEY_API_URL names a real platform or nothing was generated."""
    if os.environ.get("SURVEY_API_URL") or not records.exists():
        yield
        return
    preset_token = os.environ.get("SURVEY_API_TOKEN")
    token = preset_token or secrets.token_urlsafe(24)
    with SurveyApiServer.from_file(records, token) as server:
        os.environ["SURVEY_API_URL"], os.environ["SURVEY_API_TOKEN"] = server.base_url, token
        progress(f"survey API simulator at {server.base_url}")
        try:
            yield
        finally:
            del os.environ["SURVEY_API_URL"]
            if preset_token is None:
                del os.environ["SURVEY_API_TOKEN"]


@dataclass
class SurveyApiServer:
    """The simulated platform: `records[entity]` are the records it currently holds (latest state)."""

    records: dict[str, list[dict]]
    token: str
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port
    faults: list[Fault] = field(default_factory=list)
    requests: list[ServedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        unknown = set(self.records) - set(ID_FIELDS)
        if unknown:
            raise ValueError(f"unknown survey entities {sorted(unknown)}; the API serves {sorted(ID_FIELDS)}")
        self._lock = threading.Lock()
        self._order_cache: dict[str, tuple[list[dict], int, list[tuple[float, str]], list[dict]]] = {}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------ lifecycle

    @classmethod
    def from_file(cls, path: Path, token: str, **kwargs) -> SurveyApiServer:  # type: ignore[no-untyped-def]
        """The records a generator wrote (`hospital_ops_sim.survey`)."""
        return cls(json.loads(Path(path).read_text(encoding="utf-8"))["records"], token, **kwargs)

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("survey API simulator not started")
        return f"http://{self.host}:{self._httpd.server_address[1]}"

    def start(self) -> SurveyApiServer:
        server = self

        class Handler(_Handler):
            api = server

        self._httpd = ThreadingHTTPServer((self.host, self.port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="survey-api", daemon=True)
        self._thread.start()
        log.info("survey API simulator at %s", self.base_url)
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------ test hooks

    def inject(self, *faults: Fault) -> None:
        with self._lock:
            self.faults.extend(faults)

    def upsert(self, entity: str, records: Iterable[dict]) -> None:
        """Add records or replace those with the same id (what the platform does when a record changes)."""
        id_field = ID_FIELDS[entity]
        with self._lock:
            current = {r[id_field]: r for r in self.records.setdefault(entity, [])}
            for record in records:
                current[record[id_field]] = record
            self.records[entity] = list(current.values())

    def requests_for(self, entity: str) -> list[ServedRequest]:
        return [r for r in self.requests if r.path == API_PREFIX + entity]

    # ------------------------------------------------------------------------------ serving

    def _take_fault(self, entity: str, has_cursor: bool) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(entity, has_cursor):
                    fault.times -= 1
                    return fault
        return None

    def page(self, entity: str, query: dict[str, str]) -> tuple[list[dict], str | None, str | None]:
        """(records, next cursor, the cursor this page started from) for one request."""
        since = _instant(query.get("updated_since"), "updated_since")
        before = _instant(query.get("updated_before"), "updated_before")
        try:
            limit = min(int(query.get("limit", DEFAULT_LIMIT)), MAX_LIMIT)
        except ValueError:
            raise _BadRequest(f"limit must be an integer, got {query.get('limit')!r}") from None
        if limit < 1:
            raise _BadRequest("limit must be at least 1")
        after = _decode_cursor(query["cursor"]) if query.get("cursor") else None
        keys, records = self._ordered(entity)
        start = 0
        if since is not None:  # updated_at > since
            start = bisect.bisect_right(keys, (since.timestamp(), _AFTER_EVERY_ID))
        if after is not None:  # (updated_at, id) > the cursor
            start = max(start, bisect.bisect_right(keys, after))
        stop = len(keys) if before is None else bisect.bisect_left(keys, (before.timestamp(), ""), lo=start)
        end = min(stop, start + limit)
        next_cursor = _encode_cursor(keys[end - 1]) if stop > end else None
        return records[start:end], next_cursor, query.get("cursor")

    def _ordered(self, entity: str) -> tuple[list[tuple[float, str]], list[dict]]:
        """The entity's records with an updated_at, in (updated_at, id) order, with their keys: sorted
        once per version of the entity's records (upsert replaces the list), so a page is a bisection,
        not a scan of every record (a scan made a large history's extraction quadratic)."""
        with self._lock:
            current = self.records.get(entity, [])
            cached = self._order_cache.get(entity)
            if cached is not None and cached[0] is current and cached[1] == len(current):
                return cached[2], cached[3]
            id_field = ID_FIELDS[entity]
            stamped = []
            for record in current:
                stamp = _instant(record.get("updated_at"), "updated_at")
                if stamp is not None:
                    stamped.append(((stamp.timestamp(), str(record[id_field])), record))
            stamped.sort(key=lambda item: item[0])
            keys, records = [key for key, _ in stamped], [record for _, record in stamped]
            self._order_cache[entity] = (current, len(current), keys, records)
            return keys, records


_AFTER_EVERY_ID = "\U0010ffff"  # sorts after any record id: (t, _AFTER_EVERY_ID) follows every key at t


class _BadRequest(ValueError):
    pass


def _instant(text: object, name: str) -> datetime | None:
    if text in (None, ""):
        return None
    try:
        value = datetime.fromisoformat(str(text))
    except ValueError:
        raise _BadRequest(f"{name}: {text!r} is not an ISO 8601 timestamp") from None
    if value.tzinfo is None:
        raise _BadRequest(f"{name}: {text!r} has no UTC offset")
    return value


def _encode_cursor(sort_key: tuple[float, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(sort_key)).encode()).decode()


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        stamp, record_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return float(stamp), str(record_id)
    except (ValueError, TypeError):
        raise _BadRequest(f"cursor {cursor!r} is not a cursor this API issued") from None


class _Handler(BaseHTTPRequestHandler):
    api: SurveyApiServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        log.debug("survey API: %s", format % args)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        auth = self.headers.get("Authorization")
        status = self._answer(parts.path, query, auth)
        self.api.requests.append(ServedRequest(parts.path, query, auth, status, time.monotonic()))

    def _answer(self, path: str, query: dict[str, str], auth: str | None) -> int:
        if auth != f"Bearer {self.api.token}":
            return self._send(HTTPStatus.UNAUTHORIZED, {"error": "missing or invalid bearer token"})
        entity = path[len(API_PREFIX):] if path.startswith(API_PREFIX) else ""
        if entity not in ID_FIELDS:
            return self._send(HTTPStatus.NOT_FOUND, {"error": f"no such resource {path!r}"})
        fault = self.api._take_fault(entity, bool(query.get("cursor")))
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay)
        if fault is not None and fault.kind == "error":
            return self._send(fault.status, {"error": "internal error (injected)"})
        if fault is not None and fault.kind == "rate_limit":
            return self._send(HTTPStatus.TOO_MANY_REQUESTS, {"error": "rate limited (injected)"},
                              {"Retry-After": str(fault.retry_after)})
        try:
            data, next_cursor, this_cursor = self.api.page(entity, query)
        except _BadRequest as exc:
            return self._send(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        if fault is not None and fault.kind == "repeat_page":
            next_cursor = this_cursor or _encode_cursor((float("-inf"), ""))
        if fault is not None and fault.kind == "corrupt" and data:
            data = [{**data[0], fault.field_name: fault.bad_value}, *data[1:]]
        return self._send(HTTPStatus.OK, {"data": data, "next_cursor": next_cursor})

    def _send(self, status: int, body: dict, headers: dict[str, str] | None = None) -> int:
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout): nothing to tell it
            pass
        return int(status)
