"""The Bulk Data client against the local Bulk Data server simulator: kick-off levels, _type and _since,
polling with Retry-After and X-Progress, streamed gzip downloads, error files, DELETE, bearer and SMART
Backend Services, retried faults, clear 4xx errors, expired links and an interrupted night resumed."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from hospital_ops.extract.fhir_bulk import JOB_FILE, BulkDataClient, BulkExportError, SmartBackend
from hospital_ops_sim.fhir_bulk_server import FhirBulkServer


def resources() -> list[dict]:
    """Three patients with encounters and procedures, referring as a Bulk export does (Type/id)."""
    out: list[dict] = []
    for p in range(3):
        out.append({"resourceType": "Patient", "id": f"p{p}"})
        for e in range(4):
            out.append({"resourceType": "Encounter", "id": f"e{p}-{e}", "class": {"code": "AMB"},
                        "subject": {"reference": f"Patient/p{p}"}})
            out.append({"resourceType": "Procedure", "id": f"pr{p}-{e}", "status": "completed",
                        "subject": {"reference": f"Patient/p{p}"}, "encounter": {"reference": f"Encounter/e{p}-{e}"}})
    out.append({"resourceType": "Organization", "id": "org1"})
    return out


def ids(files: list[Path]) -> Counter:
    return Counter(f"{r['resourceType']}/{r['id']}" for path in files
                   for r in map(json.loads, path.read_text().splitlines()))


def fast(server: FhirBulkServer, **kw) -> BulkDataClient:
    return BulkDataClient(server.url, backoff=0.01, sleep=lambda s: None, **kw)


def test_a_system_export_survives_every_fault_and_keeps_the_errors(tmp_path) -> None:
    with FhirBulkServer(resources(), token="t0k", file_lines=5, errors_for={"pr1-2"}) as server:
        server.inject("rate_limit", "/$export", retry_after=0)
        server.inject("error", "/jobs/")
        server.inject("expired", "/files/")
        server.inject("cut", "Encounter_2")
        result = fast(server, token="t0k").export(tmp_path / "x", types=["Patient", "Encounter", "Procedure"])
        statuses = Counter(status for _, _, status in server.requests)
        assert statuses[429] == 1 and statuses[500] == 1 and statuses[410] == 1 and statuses[-1] == 1
        assert any(method == "DELETE" for method, _, _ in server.requests)
    expected = {f"{r['resourceType']}/{r['id']}" for r in resources()
                if r["resourceType"] != "Organization" and r["id"] != "pr1-2"}
    assert ids(result.files) == Counter(expected)  # every resource once: nothing lost, nothing twice
    assert result.resources == len(expected) and result.error_issues == 1
    assert result.progress and all("%" in p for p in result.progress)
    assert (tmp_path / "x" / "manifest.json").exists() and not (tmp_path / "x" / JOB_FILE).exists()
    assert list((tmp_path / "x").glob("_errors_*.ndjson"))


def test_since_takes_only_what_changed_after_the_previous_transaction_time(tmp_path) -> None:
    with FhirBulkServer(resources()) as server:
        first = fast(server).export(tmp_path / "night1")
        server.update({"resourceType": "Encounter", "id": "e0-1", "class": {"code": "IMP"},
                       "subject": {"reference": "Patient/p0"}}, "2099-01-01T00:00:00+00:00")
        second = fast(server).export(tmp_path / "night2", since=first.transaction_time)
        assert f"_since={first.transaction_time}".replace(":", "%3A").replace("+", "%2B") in \
            [p for m, p, s in server.requests if "$export" in p][-1]
    assert first.resources == len(resources())
    assert ids(second.files) == Counter({"Encounter/e0-1": 1})


def test_patient_and_group_levels(tmp_path) -> None:
    with FhirBulkServer(resources(), groups={"ward-3": ["p1"]}) as server:
        patient = fast(server).export(tmp_path / "patient", level="patient")
        group = fast(server).export(tmp_path / "group", level="group", group_id="ward-3")
    assert "Organization/org1" not in ids(patient.files) and patient.resources == len(resources()) - 1
    assert set(ids(group.files)) == {"Patient/p1"} | {f"Encounter/e1-{e}" for e in range(4)} | \
        {f"Procedure/pr1-{e}" for e in range(4)}


def test_a_4xx_is_a_clear_error(tmp_path) -> None:
    with FhirBulkServer(resources(), token="right") as server:
        with pytest.raises(BulkExportError, match="401 missing or invalid bearer token"):
            fast(server, token="wrong").export(tmp_path / "a")
        with pytest.raises(BulkExportError, match="400 _since 'yesterday' is not a FHIR instant"):
            fast(server, token="right").export(tmp_path / "b", since="yesterday")


def test_smart_backend_services_exchanges_a_signed_assertion_for_a_token(tmp_path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with FhirBulkServer(resources(), client_id="hospital-ops", public_key_pem=public) as server:
        smart = SmartBackend("hospital-ops", f"{server.url}/token", private, key_id="k1")
        result = fast(server, smart=smart).export(tmp_path / "s")
        assert result.resources == len(resources()) and len(server.issued) == 1
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        with pytest.raises(BulkExportError, match="invalid_client"):
            fast(server, smart=SmartBackend("hospital-ops", f"{server.url}/token", other)).export(tmp_path / "t")


def test_an_interrupted_night_resumes_its_job_without_loss_or_duplicates(tmp_path) -> None:
    folder = tmp_path / "night"
    with FhirBulkServer(resources(), file_lines=4) as server:
        server.inject("error", "/files/", times=50)  # the night dies while downloading
        client = BulkDataClient(server.url, retries=1, backoff=0.01, sleep=lambda s: None)
        with pytest.raises(BulkExportError):
            client.export(folder)
        assert (folder / JOB_FILE).exists()
        server.faults.clear()
        result = fast(server).export(folder)  # the retry of the task
        assert len(server.jobs) == 1  # the same job, not a second kick-off
    assert ids(result.files) == Counter({f"{r['resourceType']}/{r['id']}": 1 for r in resources()})
