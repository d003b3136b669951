"""The benchmark: what it reads from a night's log, how it extrapolates and judges, and a quick run end to end.

No timing is asserted: the figures depend on the machine. What is checked is that every section is
there and that the loader and the raw COPY were given, and took, the same rows.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hospital_ops import bench

NIGHT_LOG = """\
2026-11-23T15:45:39.000000Z [info     ] [DAG TEST] starting task_id=extract_his map_index=-1 [airflow]
2026-11-23T15:45:49.500000Z [info     ] [DAG TEST] end task task_id=extract_his map_index=-1 [airflow]
2026-11-23T15:45:49.600000Z [info     ] [DAG TEST] starting task_id=load_his map_index=-1 [airflow]
2026-11-23T15:45:50.000000Z [info     ] his night 2026-11-21: 11 files, 1000 rows read, 990 loaded, 10 quarantined in 3.25 s [hospital_ops.load.loader]
2026-11-23T15:45:53.600000Z [info     ] [DAG TEST] end task task_id=load_his map_index=-1 [airflow]
2026-11-23T15:45:53.700000Z [info     ] [DAG TEST] starting task_id=dbt_build_marts map_index=-1 [airflow]
2026-11-23T15:46:00.000000Z [info     ] dbt stage marts: 142 nodes ok, 0 warnings; 4.50 s running nodes, 6.00 s wall [hospital_ops.dbt_runner]
2026-11-23T15:46:00.000000Z [info     ] dbt stage marts slowest nodes: stg_his__charges 2.10 s, fct_department_month_ledger 0.75 s [hospital_ops.dbt_runner]
2026-11-23T15:46:03.700000Z [info     ] [DAG TEST] end task task_id=dbt_build_marts map_index=-1 [airflow]
"""


def test_night_log_gives_task_spans_and_the_loaders_and_dbts_own_times() -> None:
    parsed = bench.parse_night_log(NIGHT_LOG)
    assert parsed["tasks"] == {"extract_his": 10.5, "load_his": 4.0, "dbt_build_marts": 10.0}
    assert parsed["loader"]["his"] == {"files": 11, "rows_read": 1000, "rows_loaded": 990, "seconds": 3.25}
    assert parsed["dbt"]["marts"] == {"nodes": 142, "node_seconds": 4.5, "wall_seconds": 6.0,
                                      "slowest": {"stg_his__charges": 2.1, "fct_department_month_ledger": 0.75}}
    stages = bench._stage_times(parsed["tasks"])
    assert stages["extract"] == 10.5 and stages["load"] == 4.0 and stages["quality gate"] == 0.0


def _scale(multiple: float, backfill_rows: int, backfill_s: float, history: int, night_s: float) -> dict:
    night = {"succeeded": True, "wall_s": night_s, "rows_loaded": 100, "overhead_s": 20.0, "peak_rss_bytes": 2**29,
             "stages_s": dict.fromkeys(bench._STAGES, 1.0), "tasks_s": {}, "dbt": {}, "loader": {}}
    return {
        "scale": multiple,
        "history_rows": {"tables": {"his__outpatient_visits": 100, "his__inpatient_stays": 10, "his__patients": 50},
                         "total": history, "charges_of_visits": 150, "charges_of_stays": 40},
        "backfill": night | {"wall_s": backfill_s, "rows_loaded": backfill_rows},
        "incremental": night,
    }


def test_extrapolation_fits_a_line_through_the_scales_and_needs_two() -> None:
    one = bench.extrapolate([_scale(1, 1_000_000, 100.0, 1_000_000, 50.0)])
    assert "skipped" in one
    fit = bench.extrapolate([_scale(1, 1_000_000, 100.0, 1_000_000, 50.0),
                             _scale(4, 4_000_000, 250.0, 4_000_000, 50.0)])
    assert fit["rows_per_visit"] == 3.0  # (100 visits + 150 charges + 50 patients) / 100
    assert fit["rows_per_stay"] == 5.0  # (10 stays + 40 charges) / 10
    assert fit["backfill_fit"] == {"intercept_s": 50.0, "s_per_million_rows": 50.0}
    rows = bench.CONSORTIUM["outpatient_visits"] * 3 + bench.CONSORTIUM["inpatient_stays"] * 5
    assert fit["consortium_rows"] == rows
    assert fit["backfill_s"] == round(50 + 50 * rows / 1e6)
    assert fit["night_s"] == 50  # a night that does not grow with history stays as it is


def test_targets_say_missed_with_the_reason_and_met_plainly() -> None:
    result = {
        "throughput": {"sources": {"his": {"ratio": 0.1}, "vendor": {"ratio": 0.9}}},
        "scales": [_scale(1, 1_000_000, 100.0, 1_000_000, 50.0), _scale(4, 4_000_000, 250.0, 4_000_000, 50.0)],
    }
    result["extrapolation"] = bench.extrapolate(result["scales"])
    lines = {line["target"].split(" ")[0]: line for line in bench.targets(result)}
    assert lines["loader"]["verdict"] == "MISSED" and "his" in lines["loader"]["measured"]
    assert lines["loader"]["why"]
    growth = next(line for line in bench.targets(result) if line["target"].startswith("night at"))
    assert growth["verdict"] == "met" and growth["why"] is None



def test_a_grown_night_names_the_dbt_nodes_that_grew() -> None:
    small = _scale(1, 1_000_000, 100.0, 1_000_000, 50.0)
    large = _scale(16, 16_000_000, 900.0, 16_000_000, 80.0)
    small["incremental"]["dbt"] = {"marts": {"slowest": {"fct_a": 1.0, "stg_b": 0.4}}}
    large["incremental"]["dbt"] = {"marts": {"slowest": {"fct_a": 1.2, "stg_b": 6.4, "fct_c": 2.0}}}
    growth = next(line for line in bench.targets({"scales": [small, large]}) if line["target"].startswith("night at"))
    assert growth["verdict"] == "MISSED"
    # stg_b grew 6.0 s and fct_c 2.0 s (absent before); fct_a's 0.2 s is below the half-second noted
    assert growth["why"].endswith("the dbt nodes that grew most: stg_b +6.0 s, fct_c +2.0 s "
                                  "(each still reads its whole input, not the night's delta)")


@pytest.mark.e2e
def test_quick_bench_writes_every_section_and_copy_and_loader_take_the_same_rows(tmp_path: Path) -> None:
    from hospital_ops.cli import main
    from hospital_ops.sources import SOURCES

    prefix = f"benchtest_{os.getpid()}"
    code = main(["bench", "--quick", "--repetitions", "1", "--end", "2026-11-22", "--home", str(tmp_path),
                 "--database-prefix", prefix])
    assert code == 0
    [figures] = tmp_path.glob("*.json")
    result = json.loads(figures.read_text())
    assert set(result) >= {"machine", "throughput", "scales", "extrapolation", "targets"}
    assert result["machine"]["cores"] >= 1 and result["machine"]["postgresql"]
    sources = result["throughput"]["sources"]
    # every source whose bulk input is CSV files (the survey platform's API has no files to COPY)
    assert set(sources) == {name for name, source in SOURCES.items() if source.extract != "api"}
    for name, figures_of_source in sources.items():
        assert figures_of_source["rows_loader"] > 0, name
        assert figures_of_source["rows_loader"] == figures_of_source["rows_copy"], name
    [scale] = result["scales"]
    for kind in ("backfill", "incremental"):
        night = scale[kind]
        assert night["succeeded"], night["log"]
        assert set(night["stages_s"]) == set(bench._STAGES)
        assert night["stages_s"]["load"] > 0 and night["peak_rss_bytes"] > 0
        assert set(night["loader"]) == set(SOURCES)
        assert {"marts", "scoring", "snapshots"} <= set(night["dbt"])
    assert scale["backfill"]["rows_loaded"] > scale["incremental"]["rows_loaded"] > 0
    assert "skipped" in result["extrapolation"]  # one scale: no line to extrapolate on
    assert {line["verdict"] for line in result["targets"]} <= {"met", "MISSED", "met so far", "MISSED so far",
                                                               "not measured"}
    _drop_databases(prefix)


def _drop_databases(prefix: str) -> None:
    from hospital_ops import warehouse

    for name in (f"{prefix}_x1", f"{prefix}_his_x1"):
        warehouse.drop_database(name)


def test_scales_are_multiples_of_the_demos_hospitals_times_months() -> None:
    demo = bench.SCALES[1][0] * bench.SCALES[1][1]
    for multiple, (hospitals, months) in bench.SCALES.items():
        assert hospitals * months == multiple * demo, multiple
