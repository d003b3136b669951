"""Limits on the writer's nightly sessions, so that no bad row can run a statement for hours or fill
the disk with temporary files (an implausible date once stretched a month spine over centuries and a
scoring model then wrote temporary files until the disk was full).

- `statement_timeout` on every nightly session: the loader and publication (`pipeline.connect`), dbt
  (PGOPTIONS, which libpq reads) and the quality gate (its connection options);
- `temp_file_limit` on the writer role itself (`ALTER ROLE … SET`): a superuser-only setting, so it is
  set by the administrator where the warehouse's roles are set up (`warehouse.create_database`), and
  then holds for every session of the writer.

Both come from the environment (`HOSPITAL_OPS_STATEMENT_TIMEOUT`, `HOSPITAL_OPS_TEMP_FILE_LIMIT`) in
PostgreSQL's own units.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from psycopg2.extensions import cursor as PgCursor

DEFAULT_STATEMENT_TIMEOUT = "30min"  # the longest statement of a 16x catch-up night takes a few minutes
DEFAULT_TEMP_FILE_LIMIT = "10GB"  # per session; a night's largest sort or hash spills well under 1 GB
_SETTING = re.compile(r"^[0-9]+\s*(us|ms|s|min|h|d|kB|MB|GB|TB)?$")


def _setting(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip() or default
    if not _SETTING.match(value):
        raise ValueError(f"{name}={value!r} is not a PostgreSQL amount (e.g. 30min, 10GB)")
    return value.replace(" ", "")


def statement_timeout() -> str:
    return _setting("HOSPITAL_OPS_STATEMENT_TIMEOUT", DEFAULT_STATEMENT_TIMEOUT)


def temp_file_limit() -> str:
    return _setting("HOSPITAL_OPS_TEMP_FILE_LIMIT", DEFAULT_TEMP_FILE_LIMIT)


def session_options() -> str:
    """libpq `options` (or PGOPTIONS) for a nightly session of the writer."""
    return f"-c statement_timeout={statement_timeout()}"


def apply_role_limits(cur: PgCursor, role: str) -> None:
    """Set the writer role's temp_file_limit (run as a superuser: the setting is superuser-only)."""
    cur.execute(f'alter role "{role}" set temp_file_limit = %s', (temp_file_limit(),))
