"""Shared fixtures: a real PostgreSQL (the embedded warehouse, or WAREHOUSE_URL with
WAREHOUSE_ADMIN_URL) with throw-away databases owned by the pipeline's writer role, so tests never
touch the demo's data."""

from __future__ import annotations

import os
import uuid

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
