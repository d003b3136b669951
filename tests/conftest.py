"""Shared fixtures: a real PostgreSQL (the embedded warehouse, or WAREHOUSE_URL) with a fresh
database per test session, so tests never touch the demo's data."""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlparse, urlunparse

import psycopg2
import pytest

from hospital_ops import warehouse


def with_database(url: str, database: str) -> str:
    parsed = urlparse(url)
    return urlunparse(parsed._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def server_url() -> str:
    return warehouse.start()


@pytest.fixture(scope="session")
def fresh_database(server_url: str):
    """A factory of throw-away databases on the test server, dropped at the end of the session."""
    admin_url = with_database(server_url, "postgres")
    created: list[str] = []

    def make(prefix: str = "test") -> str:
        name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        conn = psycopg2.connect(admin_url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'create database "{name}"')
        conn.close()
        created.append(name)
        return with_database(server_url, name)

    yield make
    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        for name in created:
            cur.execute(f'drop database if exists "{name}" with (force)')
    conn.close()


@pytest.fixture
def db_url(fresh_database) -> str:
    return fresh_database("unit")
