"""docker-compose.yml parses and keeps its promises, checked without a Docker engine.

`docker-compose config` (Debian's docker-compose 1.29, or Compose v2's `docker compose config`)
interpolates and validates the file without talking to a daemon. It runs here with a temporary .env
made from .env.example and a scrubbed environment, so nothing from the developer's shell leaks in.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

# the services the README names
EXPECTED_SERVICES = {
    "warehouse", "airflow-db", "redis", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
    "airflow-triggerer", "airflow-worker", "airflow-init", "metabase", "metabase-db", "metabase-init", "dbt-docs",
}
# run to completion (or interactively); everything else is long-running and needs a healthcheck
ONE_SHOT = {"airflow-init", "metabase-init", "airflow-cli"}
AIRFLOW_SERVICES = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                    "airflow-worker", "airflow-init"}
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}; `$${...}` is an escaped literal
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(?::?[-?])[^}]*)?\}")
SECRET_KEY = re.compile(r"PASSWORD|PASS$|SECRET|_KEY$|TOKEN|CONN_|_URL$|SQL_ALCHEMY_CONN|RESULT_BACKEND")


def _compose_command() -> list[str] | None:
    """docker-compose (1.29 parses without an engine), else Compose v2's `docker compose`."""
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, check=False)
        if probe.returncode == 0:
            return [docker, "compose"]
    return None


def _env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f".env.example: not KEY=value: {line!r}"
        values[key.strip()] = value.strip()
    return values


def _compose_text_without_comments() -> str:
    return "\n".join(re.sub(r"(^|\s)#.*$", "", line) for line in COMPOSE_FILE.read_text(encoding="utf-8").splitlines())


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> dict:
    command = _compose_command()
    if command is None:
        pytest.skip("neither docker-compose nor `docker compose` is installed "
                    "(apt-get install docker-compose gives one that needs no engine)")
    env_file = tmp_path_factory.mktemp("compose") / ".env"
    shutil.copy(ENV_EXAMPLE, env_file)
    result = subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "--env-file", str(env_file), "config"],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
        env={"PATH": os.pathsep.join([str(Path(command[0]).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
             "HOME": str(env_file.parent)},
    )
    assert result.returncode == 0, f"`{' '.join(command)} config` failed:\n{result.stderr}"
    assert "WARNING" not in result.stderr and "is not set" not in result.stderr, result.stderr
    return yaml.safe_load(result.stdout)


def test_every_named_service_exists(config: dict) -> None:
    missing = EXPECTED_SERVICES - set(config["services"])
    assert not missing, f"services missing from docker-compose.yml: {sorted(missing)}"


def test_every_long_running_service_has_a_healthcheck(config: dict) -> None:
    unchecked = [name for name, service in config["services"].items()
                 if name not in ONE_SHOT and not (service.get("healthcheck") or {}).get("test")]
    assert not unchecked, f"long-running services without a healthcheck: {unchecked}"


def test_startup_order_waits_for_health_and_for_the_init_job(config: dict) -> None:
    services = config["services"]
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        depends = services[name]["depends_on"]
        assert depends["airflow-init"]["condition"] == "service_completed_successfully", name
        for dependency in ("airflow-db", "redis", "warehouse"):
            assert depends[dependency]["condition"] == "service_healthy", (name, dependency)
    assert services["metabase"]["depends_on"]["metabase-db"]["condition"] == "service_healthy"
    assert services["metabase-init"]["depends_on"]["metabase"]["condition"] == "service_healthy"
    for name in ONE_SHOT - {"airflow-cli"}:
        assert services[name].get("restart", "no") == "no", f"{name} is one-shot and must not restart"


def test_airflow_services_run_the_project_image(config: dict) -> None:
    services = config["services"]
    image = services["airflow-init"]["image"]
    assert image and not image.startswith("apache/airflow"), "Airflow must run the image built from ./Dockerfile"
    for name in AIRFLOW_SERVICES | {"metabase-init"}:
        service = services[name]
        assert service["image"] == image, name
        assert Path(service["build"]["context"]).resolve() == ROOT, name
        if name != "metabase-init":
            env = service["environment"]
            assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
            assert str(env["AIRFLOW__CORE__LOAD_EXAMPLES"]).lower() == "false"
            assert env["AIRFLOW_CONN_WAREHOUSE"].startswith("postgresql://hospital_ops_writer:")
            # `hospital-ops audit verify` runs as the auditor where the anchor is
            assert env["WAREHOUSE_AUDITOR_URL"].startswith("postgresql://auditor:")
            assert env["HOSPITAL_OPS_INBOX"] == "/opt/hospital-ops/inbox"
            assert env["AIRFLOW__CORE__DEFAULT_TIMEZONE"] == "Asia/Shanghai"
            alerts = json.loads(env["AIRFLOW_CONN_HOSPITAL_OPS_ALERTS"])
            assert alerts == json.loads(_env_example()["HOSPITAL_OPS_ALERTS_CONNECTION"])
            assert alerts["conn_type"] == "apprise" and all(c["path"] for c in alerts["extra"]["config"])
            assert env["HOSPITAL_OPS_PSEUDONYM_KEY"] == _env_example()["HOSPITAL_OPS_PSEUDONYM_KEY"]
            assert any(str(v).endswith(":/opt/hospital-ops/inbox:rw") or str(v).endswith(":/opt/hospital-ops/inbox")
                       for v in service["volumes"]), f"{name} must mount ./inbox"
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM \$\{AIRFLOW_IMAGE\}", dockerfile, re.MULTILINE)
    assert "ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11" in dockerfile
    assert "apache-airflow==3.3.2" in (ROOT / "requirements.txt").read_text(encoding="utf-8")


def test_warehouse_is_postgres_18_with_its_own_volume_and_role_init(config: dict) -> None:
    warehouse = config["services"]["warehouse"]
    assert warehouse["image"].startswith("postgres:18")
    volumes = [str(v) for v in warehouse["volumes"]]
    assert any(v.startswith("warehouse-data:/var/lib/postgresql") for v in volumes), volumes
    assert any(v.endswith(":/docker-entrypoint-initdb.d:ro") for v in volumes), volumes
    # the roles' settings come from the file the embedded warehouse applies (hospital_ops.security)
    assert any(v.startswith("./include/hospital_ops/sql/role_settings.sql:") or "include/hospital_ops/sql/role_settings.sql:"
               in v for v in volumes), volumes
    assert warehouse["environment"]["HOSPITAL_OPS_TEMP_FILE_LIMIT"] == "10GB"
    init = ROOT / "docker" / "warehouse-init" / "10-hospital-ops-roles.sh"
    text = init.read_text(encoding="utf-8")
    for role in ("hospital_ops_writer", "bi_reader", "auditor"):
        assert role in text
    for name in ("airflow-db", "metabase-db"):
        others = [str(v) for v in config["services"][name]["volumes"]]
        assert not any(v.startswith("warehouse-data:") for v in others), name


def test_metabase_reads_the_warehouse_as_bi_reader_only(config: dict) -> None:
    env = config["services"]["metabase-init"]["environment"]
    assert env["METABASE_WAREHOUSE_USER"] == "bi_reader"
    assert env["METABASE_WAREHOUSE_PASSWORD"] == _env_example()["WAREHOUSE_BI_READER_PASSWORD"]
    writer_password = _env_example()["WAREHOUSE_WRITER_PASSWORD"]
    for name in ("metabase", "metabase-init", "metabase-db"):
        assert writer_password not in yaml.safe_dump(config["services"][name]), name


def test_no_secret_literal_in_the_compose_file() -> None:
    """Secrets only reach the file as ${VAR}: no value of .env.example appears literally, and every
    secret-looking environment entry interpolates a variable."""
    text = _compose_text_without_comments()
    for key, value in _env_example().items():
        if SECRET_KEY.search(key):
            assert value not in text, f"{key}'s value from .env.example appears literally in docker-compose.yml"
    raw = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    blocks = [raw["x-airflow-common"]["environment"]] + [s.get("environment") or {} for s in raw["services"].values()]
    for environment in blocks:
        for key, value in environment.items():
            if SECRET_KEY.search(key) and "redis://" not in str(value) and "http://" not in str(value):
                assert VARIABLE.search(str(value)), f"{key} must take its secret from a ${{VAR}}, got {value!r}"


def test_env_example_defines_every_variable_the_compose_file_uses() -> None:
    used = set(VARIABLE.findall(_compose_text_without_comments()))
    defined = set(_env_example())
    assert used, "no ${VAR} found: the pattern is wrong"
    assert not used - defined, f".env.example lacks {sorted(used - defined)}"
    unused = defined - used
    assert not unused, f".env.example defines variables docker-compose.yml never uses: {sorted(unused)}"


def test_dbt_docs_serves_the_site_hospital_ops_docs_generates(config: dict, monkeypatch) -> None:
    """The dbt-docs service runs the same `hospital-ops docs` as the demo, as the writer role, and
    serves the folder that command publishes into."""
    from hospital_ops.dbt_runner import docs_dir

    service = config["services"]["dbt-docs"]
    script = " ".join(service["command"]) if isinstance(service["command"], list) else service["command"]
    env = service["environment"]
    assert env["WAREHOUSE_URL"].startswith("postgresql://hospital_ops_writer:")
    monkeypatch.setenv("HOSPITAL_OPS_VAR_DIR", env["HOSPITAL_OPS_VAR_DIR"])
    served = re.search(r"python -m http\.server (\d+) --directory (\S+)", script)
    assert "hospital-ops docs" in script and served, script
    assert served.group(2) == str(docs_dir())
    targets = [str(p["target"]) if isinstance(p, dict) else str(p).split(":")[-1].split("/")[0]
               for p in service["ports"]]
    assert served.group(1) in targets, service["ports"]
    assert served.group(1) in " ".join(service["healthcheck"]["test"])
