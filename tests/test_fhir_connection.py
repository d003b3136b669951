"""The FHIR server's settings come from the Airflow connection `his_fhir` (as the other sources' do), and
only a connection that is not found falls back to the HIS_FHIR_* environment. Each way is tried for real
against the local Bulk Data server: a bearer token, and SMART Backend Services with the private key held
in the connection's extra."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from hospital_ops.extract.fhir_night import FhirServerSettings, HisConfigurationError
from hospital_ops_sim.fhir_bulk_server import FhirBulkServer

DAGS_DIR = Path(__file__).resolve().parents[1] / "dags"
RESOURCES = [{"resourceType": "Patient", "id": "p1"},
             {"resourceType": "Encounter", "id": "e1", "subject": {"reference": "Patient/p1"}}]


def _nightly():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("nightly_for_fhir_connection", DAGS_DIR / "hospital_ops_nightly.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _export(settings: FhirServerSettings, folder: Path) -> int:
    return settings.client().export(folder).resources


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("HIS_FHIR_URL", "HIS_FHIR_TOKEN", "HIS_FHIR_CLIENT_ID", "HIS_FHIR_TOKEN_URL",
                 "HIS_FHIR_PRIVATE_KEY_FILE", "HIS_FHIR_KEY_ID", "HIS_FHIR_GROUP", "AIRFLOW_CONN_HIS_FHIR"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_connection_wins_and_the_environment_is_the_fallback(clean_env, tmp_path) -> None:
    nightly = _nightly()
    assert nightly._fhir_server() is None  # neither: the night's extract says the HIS is not configured
    with FhirBulkServer(RESOURCES, token="env-token", polls_before_ready=0) as env_server, \
            FhirBulkServer(RESOURCES, token="conn-token", polls_before_ready=0) as conn_server:
        clean_env.setenv("HIS_FHIR_URL", env_server.url)
        clean_env.setenv("HIS_FHIR_TOKEN", "env-token")
        from_env = nightly._fhir_server()
        assert (from_env.url, from_env.token) == (env_server.url, "env-token")
        assert _export(from_env, tmp_path / "env") == len(RESOURCES)

        parts = urlsplit(conn_server.url)  # host with the base path, port and scheme apart, as Airflow's HttpHook
        clean_env.setenv("AIRFLOW_CONN_HIS_FHIR", json.dumps(
            {"conn_type": "http", "host": f"{parts.hostname}{parts.path}", "port": parts.port, "schema": "http",
             "password": "conn-token",
             "extra": {"group": "ward-3"}}))
        from_conn = nightly._fhir_server()
        assert (from_conn.url, from_conn.token, from_conn.group) == (conn_server.url, "conn-token", "ward-3")
        assert _export(from_conn, tmp_path / "conn") == len(RESOURCES)


def test_smart_backend_services_with_the_key_in_the_connection(clean_env, tmp_path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with FhirBulkServer(RESOURCES, client_id="hospital-ops", public_key_pem=public, polls_before_ready=0) as server:
        clean_env.setenv("AIRFLOW_CONN_HIS_FHIR", json.dumps(
            {"conn_type": "http", "host": server.url, "login": "hospital-ops",
             "extra": {"token_url": f"{server.url}/token", "private_key": private, "key_id": "k1"}}))
        settings = _nightly()._fhir_server()
        assert (settings.client_id, settings.token) == ("hospital-ops", None)
        assert "PRIVATE KEY" not in repr(settings)  # the key never reaches a log line
        assert _export(settings, tmp_path / "smart") == len(RESOURCES) and len(server.issued) == 1
    with pytest.raises(HisConfigurationError, match="token URL and the private key"):
        FhirServerSettings(url=server.url, client_id="hospital-ops").client()


def test_a_secrets_backend_error_is_not_taken_for_not_configured(clean_env) -> None:
    from airflow.sdk import BaseHook

    def backend_down(conn_id):
        raise ConnectionError(f"secrets backend unreachable while reading {conn_id}")

    clean_env.setenv("HIS_FHIR_URL", "http://127.0.0.1:1/fhir")
    clean_env.setattr(BaseHook, "get_connection", staticmethod(backend_down))
    with pytest.raises(ConnectionError, match="his_fhir"):
        _nightly()._fhir_server()
