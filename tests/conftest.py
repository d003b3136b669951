"""Shared fixtures: a real PostgreSQL (the embedded warehouse, or WAREHOUSE_URL with
WAREHOUSE_ADMIN_URL) with throw-away databases owned by the pipeline's writer role, so tests never
touch the demo's data."""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest

from hospital_ops import warehouse


@pytest.fixture(scope="session")
def server_url() -> str:
    return warehouse.start()


@pytest.fixture(scope="session")
def fresh_database(server_url: str):
    """A factory of throw-away databases on the test server, dropped at the end of the session."""
    created: list[str] = []

    def make(prefix: str = "test") -> str:
        name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        url = warehouse.create_database(name)
        created.append(name)
        return url

    yield make
    for name in created:
        warehouse.drop_database(name)


@pytest.fixture
def db_url(fresh_database) -> str:
    return fresh_database("unit")


@pytest.fixture(scope="session", autouse=True)
def role_url(server_url: str):
    """`role_url(database_url, role)`: the same database, logged in as another role with its password
    (taken at the session's start, hence autouse: module fixtures later point HOSPITAL_OPS_VAR_DIR and
    WAREHOUSE_URL elsewhere, and a first use under them would read the wrong secrets)."""
    from hospital_ops import security

    urls = {role: warehouse.role_url(role) for role in security.LOGIN_ROLES}

    def make(database_url: str, role: str) -> str:
        userinfo = urlsplit(urls[role]).netloc.rsplit("@", 1)[0]
        parts = urlsplit(database_url)
        return urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc.rsplit('@', 1)[1]}"))

    return make


@pytest.fixture(scope="session")
def admin_database_url(server_url: str):
    """`admin_database_url(database_url)`: the same database as the superuser (setup and the tests
    that play a determined administrator)."""
    admin = warehouse.admin_url()

    def make(database_url: str) -> str:
        return warehouse.with_database(admin, urlsplit(database_url).path.lstrip("/"))

    return make
