"""The dashboard spec (include/hospital_ops/bi/dashboards.yml), dbt's exposures and the rpt_ models stay
in step, read from the manifest of a real `dbt parse`:

- models/exposures.yml is exactly what the spec generates (`hospital-ops bi exposures`);
- every dashboard has one exposure, labelled with its title, whose depends_on are exactly the rpt_
  models its charts read;
- every chart reads an rpt_ model published into `marts`, and every column it reads is a column of that
  model's enforced contract, typed and described;
- every rpt_ model has an enforced contract.
"""

from __future__ import annotations

import json

import pytest

from hospital_ops import metabase
from hospital_ops.bi import spec as bi_spec
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
    """`schema.table` as BI reads it (the published copy) → the dbt model node."""
    models = {}
    for node in manifest["nodes"].values():
        schema = metabase.PUBLISHED_SCHEMA.get(node.get("schema", ""))
        if node["resource_type"] == "model" and schema:
            models[f"{schema}.{node.get('alias') or node['name']}"] = node
    return models


def test_exposures_file_is_generated_from_the_spec() -> None:
    path = settings().dbt_project_dir / "models" / "exposures.yml"
    assert path.read_text(encoding="utf-8") == bi_spec.exposures_yaml(bi_spec.load()), (
        "models/exposures.yml differs from the dashboard spec: run `hospital-ops bi exposures`")


def test_every_dashboard_has_an_exposure_reading_exactly_its_models(manifest: dict) -> None:
    spec = bi_spec.load()
    models = published_models(manifest)
    by_id = {node["unique_id"]: relation for relation, node in models.items()}
    exposures = {e["label"]: e for e in manifest["exposures"].values()}
    assert len(exposures) == len(manifest["exposures"]), "two exposures share a label"
    assert set(exposures) == {dashboard.title for dashboard in spec.dashboards}
    for dashboard in spec.dashboards:
        exposure = exposures[dashboard.title]
        assert exposure["type"] == "dashboard" and exposure["owner"]["name"] == dashboard.owner
        read = sorted(by_id[node] for node in exposure["depends_on"]["nodes"])
        assert read == sorted(f"marts.{model}" for model in dashboard.models), dashboard.title


def test_every_chart_reads_contracted_columns_of_a_published_rpt_model(manifest: dict) -> None:
    spec = bi_spec.load()
    models = published_models(manifest)
    checked = 0
    for dashboard in spec.dashboards:
        for chart in dashboard.charts:
            assert chart.relation in models, f"{chart.title}: {chart.relation} is no published dbt model"
            node = models[chart.relation]
            assert node["path"].startswith("reporting/"), f"{chart.title}: {node['path']} is not an rpt_ model"
            missing = [c for c in chart.read_columns if c not in node["columns"]]
            assert not missing, f"{chart.title}: {chart.model} has no column {missing}"
            checked += len(chart.read_columns)
    assert checked >= 100


def test_every_rpt_model_has_an_enforced_contract(manifest: dict) -> None:
    models = published_models(manifest)
    reports = {relation: node for relation, node in models.items() if node["name"].startswith("rpt_")
               and node["path"].startswith("reporting/")}
    read = {f"marts.{model}" for model in bi_spec.load().models}
    assert read <= set(reports)
    for relation, node in sorted(reports.items()):
        assert node["config"]["contract"]["enforced"], f"{relation}: no enforced contract"
        untyped = [name for name, column in node["columns"].items() if not column.get("data_type")]
        assert not untyped, f"{relation}: columns without data_type {untyped}"
        undocumented = [name for name, column in node["columns"].items() if not column.get("description")]
        assert not undocumented, f"{relation}: columns without a description {undocumented}"


def test_a_chart_reading_a_mart_or_naming_an_unlabelled_column_is_refused() -> None:
    document = {"columns": {"month": {"zh": "月份", "en": "Month"}},
                "dashboards": [{"key": "d", "title_zh": "看板", "title_en": "Board", "owner": "o", "description": "x",
                                "charts": [{"key": "c", "title_zh": "图", "title_en": "Chart", "type": "table",
                                            "model": "fct_department_month_ledger", "columns": ["month"]}]}]}
    with pytest.raises(bi_spec.SpecError, match="rpt_ model only"):
        bi_spec.parse(document)
    document["dashboards"][0]["charts"][0].update(model="rpt_x", columns=["month", "drug_ratio"])
    with pytest.raises(bi_spec.SpecError, match="drug_ratio"):
        bi_spec.parse(document)
    document["dashboards"][0]["charts"][0].update(columns=["month"])
    assert bi_spec.parse(document).dashboards[0].charts[0].relation == "marts.rpt_x"
