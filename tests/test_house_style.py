"""The house style, checked in `make test` (and so CI) as .pre-commit-config.yaml checks it before a commit:
sqlfluff over the dbt SQL (.sqlfluff) and dbt-bouncer's conventions over dbt's manifest (dbt-bouncer.yml).
Neither needs a warehouse: sqlfluff renders the models with the jinja templater, and `dbt parse` writes
the manifest without connecting. docs/conventions.md says what each rule asks and why.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DBT_PROJECT = ROOT / "dbt_project"


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False, **kwargs)


def _sqlfluff_lint_text(sql: str, as_path: str) -> subprocess.CompletedProcess[str]:
    """Lint a planted query as if it were the file `as_path` (so the repository's .sqlfluff applies)."""
    return _run([str(BIN / "sqlfluff"), "lint", "-", "--stdin-filename", as_path, "--format", "json"], input=sql)


def _rules(result: subprocess.CompletedProcess[str]) -> set[str]:
    return {violation["code"] for file in json.loads(result.stdout) for violation in file["violations"]}


def test_the_dbt_sql_is_sqlfluff_clean() -> None:
    result = _run([str(BIN / "sqlfluff"), "lint", "dbt_project", "--processes", "2", "--format", "human"])
    assert result.returncode == 0, f"sqlfluff lint dbt_project (fix with `sqlfluff fix dbt_project`):\n{result.stdout}{result.stderr}"
    linted = result.stdout + result.stderr
    assert "TMP" not in linted and "PRS" not in linted, linted  # every model renders and parses


def test_sqlfluff_fires_on_a_query_against_the_house_style_and_passes_one_in_it() -> None:
    model = "dbt_project/models/marts/vendor/fct_planted.sql"
    against = "SELECT vendor_id, COUNT(*) AS deliveries\nFROM {{ ref('stg_vendor__deliveries') }}\nGROUP BY vendor_id\n"
    assert {"CP01", "CP03", "LT09"} <= _rules(_sqlfluff_lint_text(against, model))
    within = ("with deliveries as (\n    select * from {{ ref('stg_vendor__deliveries') }}\n)\n\n"
              "select\n    vendor_id,\n    count(*) as deliveries,\n"
              "    count(*) filter (where delivered_on > {{ business_date() }} - {{ var('rectification_months') }})"
              " as recent\nfrom deliveries\ngroup by vendor_id\n")
    assert _rules(_sqlfluff_lint_text(within, model)) == set()


@pytest.fixture(scope="module")
def manifest_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dbt's manifest from `dbt parse`, which reads the project and the profile but connects to nothing."""
    target = tmp_path_factory.mktemp("dbt_target")
    env = {**os.environ, "WAREHOUSE_HOST": "127.0.0.1", "WAREHOUSE_PORT": "1"}  # nothing listens there
    result = _run([str(BIN / "dbt"), "parse", "--project-dir", str(DBT_PROJECT), "--profiles-dir", str(DBT_PROJECT),
                   "--target-path", str(target), "--log-path", str(target), "--no-partial-parse"], env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return target


def _bouncer(artifacts: Path, checks: list[dict] | None = None) -> tuple[int, list[dict], str]:
    """Run dbt-bouncer with the repository's config (or only `checks` of it) on the manifest in `artifacts`."""
    config = yaml.safe_load((ROOT / "dbt-bouncer.yml").read_text(encoding="utf-8"))
    config["dbt_artifacts_dir"] = str(artifacts)
    config["custom_checks_dir"] = str(ROOT / config["custom_checks_dir"])
    if checks is not None:
        config["manifest_checks"] = checks
    config_file, results_file = artifacts / "dbt-bouncer.yml", artifacts / "bouncer-results.json"
    config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = _run([str(BIN / "dbt-bouncer"), "run", "--config-file", str(config_file), "--show-all-failures",
                   "--output-format", "json", "--output-file", str(results_file)])
    results = json.loads(results_file.read_text(encoding="utf-8"))
    failed = [r for r in results if r["outcome"] != "success" and r["severity"] == "error"]
    return result.returncode, failed, result.stdout + result.stderr  # the output lists the warnings too


def test_the_dbt_project_follows_its_conventions(manifest_dir: Path) -> None:
    returncode, failed, output = _bouncer(manifest_dir)
    assert not failed and returncode == 0, "dbt-bouncer (dbt-bouncer.yml):\n" + "\n".join(
        f"{r['check_run_id']}: {r['failure_message']}" for r in failed) + ("" if failed else output)


def test_the_conventions_check_fires_on_planted_breaches_and_only_there(manifest_dir: Path, tmp_path: Path) -> None:
    manifest = json.loads((manifest_dir / "manifest.json").read_text(encoding="utf-8"))
    nodes = manifest["nodes"]
    # planted: an intermediate model without a description or key test, a mart that reads a source,
    # a staging model named like a mart
    undocumented, reads_source, misnamed = ("model.hospital_ops.int_vendor__month_spine",
                                            "model.hospital_ops.fct_vendor_month_kpis",
                                            "model.hospital_ops.stg_vendor__deliveries")
    nodes[undocumented]["description"] = ""
    for test in [n for n in nodes.values() if n["resource_type"] == "test" and n.get("attached_node") == undocumented]:
        del nodes[test["unique_id"]]
    source = next(iter(manifest["sources"]))
    nodes[reads_source]["depends_on"]["nodes"].append(source)
    renamed = "model.hospital_ops.fct_deliveries"
    nodes[renamed] = copy.deepcopy(nodes.pop(misnamed))
    nodes[renamed].update(unique_id=renamed, name="fct_deliveries")
    for node in nodes.values():  # the tests attached to the renamed model follow it
        if node.get("attached_node") == misnamed:
            node["attached_node"] = renamed
    planted = tmp_path / "target"
    planted.mkdir()
    (planted / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")

    returncode, failed, output = _bouncer(planted)
    fired = {(r["check_run_id"].split(":")[0], r["unique_id"].split(".")[-1]) for r in failed}
    assert returncode != 0, output
    assert fired == {("check_model_description_populated", "int_vendor__month_spine"),
                     ("check_model_has_key", "int_vendor__month_spine"),
                     ("check_lineage_source_cannot_be_used", "fct_vendor_month_kpis"),
                     ("check_model_does_not_directly_join_to_source", "fct_vendor_month_kpis"),
                     ("check_model_names", "fct_deliveries")}, failed


def test_the_pre_commit_config_is_valid() -> None:
    result = _run([str(BIN / "pre-commit"), "validate-config", ".pre-commit-config.yaml"])
    assert result.returncode == 0, result.stdout + result.stderr
    hooks = {hook["id"] for repo in yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())["repos"]
             for hook in repo["hooks"]}
    assert {"sqlfluff-lint", "dbt-conventions", "ruff", "mypy"} <= hooks
