"""dbt exposures (dbt_project/models/exposures.yml) and the Metabase dashboards
(hospital_ops.metabase.DASHBOARDS) stay in step, read from the manifest of a real `dbt parse`:

- every dashboard whose relations are all dbt models has one exposure of type dashboard, labelled with
  the dashboard's name, whose depends_on are exactly the models its cards read;
- a dashboard that reads a relation no dbt model builds yet has no exposure (its marts come later);
- every exposure is a dashboard that exists, with an owner;
- every model a dashboard reads, every rpt_ model and every mart or scoring model an rpt_ model reads
  has an enforced contract.
"""

from __future__ import annotations

import json

import pytest

from hospital_ops import metabase
from hospital_ops.config import settings


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> dict:
    from dbt.cli.main import dbtRunner

    target = tmp_path_factory.mktemp("dbt_parse")
    project = settings().dbt_project_dir
    outcome = dbtRunner().invoke(["parse", "--project-dir", str(project), "--profiles-dir", str(project),
                                  "--target-path", str(target), "--log-path", str(target / "logs"), "--quiet"])
    assert outcome.success, f"dbt parse failed: {outcome.exception}"
    return json.loads((target / "manifest.json").read_text(encoding="utf-8"))


def published_models(manifest: dict) -> dict[str, dict]:
    """`schema.table` as Metabase reads it (the published copy) → the dbt model node."""
    models = {}
    for node in manifest["nodes"].values():
        schema = metabase.PUBLISHED_SCHEMA.get(node.get("schema", ""))
        if node["resource_type"] == "model" and schema:
            models[f"{schema}.{node.get('alias') or node['name']}"] = node
    return models


def dashboard_exposures(manifest: dict) -> dict[str, dict]:
    exposures = {}
    for exposure in manifest["exposures"].values():
        assert exposure["type"] == "dashboard", f"{exposure['name']}: only dashboards are exposed so far"
        assert exposure["label"] not in exposures, f"two exposures are labelled {exposure['label']!r}"
        exposures[exposure["label"]] = exposure
    return exposures


def test_every_buildable_dashboard_has_an_exposure_reading_exactly_its_relations(manifest: dict) -> None:
    models = published_models(manifest)
    by_id = {node["unique_id"]: relation for relation, node in models.items()}
    exposures = dashboard_exposures(manifest)
    exposed = 0
    for spec in metabase.DASHBOARDS:
        not_built = sorted(set(spec.relations) - set(models))
        if not_built:
            assert spec.name not in exposures, (
                f"exposure {exposures[spec.name]['name']} names dashboard {spec.name!r}, which reads "
                f"{', '.join(not_built)} that no dbt model builds")
            continue
        assert spec.name in exposures, (f"dashboard {spec.name!r} reads only dbt models "
                                        f"({', '.join(spec.relations)}): add its exposure to models/exposures.yml")
        exposure = exposures[spec.name]
        depends_on = exposure["depends_on"]["nodes"]
        assert all(node in by_id for node in depends_on), f"{exposure['name']}: depends on {depends_on}"
        assert sorted(by_id[node] for node in depends_on) == spec.relations, exposure["name"]
        exposed += 1
    assert exposed >= 4, "the vendor, ledger, scorecard and DRG dashboards all read dbt models"


def test_every_exposure_is_a_dashboard_that_exists_and_has_an_owner(manifest: dict) -> None:
    names = {spec.name for spec in metabase.DASHBOARDS}
    exposures = dashboard_exposures(manifest)
    assert exposures, "no exposure in the manifest"
    for label, exposure in exposures.items():
        assert label in names, f"exposure {exposure['name']} is labelled {label!r}, which is no dashboard in metabase.py"
        assert exposure["owner"].get("name") or exposure["owner"].get("email"), exposure["name"]


def test_every_model_a_dashboard_reads_has_an_enforced_contract(manifest: dict) -> None:
    models = published_models(manifest)
    read = {relation for spec in metabase.DASHBOARDS for relation in spec.relations if relation in models}
    reports = {relation for relation, node in models.items() if node["path"].startswith("marts/reporting/")}
    by_id = {node["unique_id"]: relation for relation, node in models.items()}
    read |= reports | {by_id[parent] for relation in reports for parent in models[relation]["depends_on"]["nodes"]
                       if parent in by_id}
    assert len(reports) >= 4 and len(read) >= 14
    for relation in sorted(read):
        node = models[relation]
        assert node["config"]["contract"]["enforced"], f"{relation}: no enforced contract"
        untyped = [name for name, column in node["columns"].items() if not column.get("data_type")]
        assert not untyped, f"{relation}: columns without data_type {untyped}"
        undocumented = [name for name, column in node["columns"].items() if not column.get("description")]
        assert not undocumented, f"{relation}: columns without a description {undocumented}"
