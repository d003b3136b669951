"""The dashboard spec (dashboards.yml beside this module): dashboards per audience, their charts, the
rpt_ model each chart reads, labels in Chinese and English with units, and filters.

Read once here; the dbt exposures (`exposures_yaml`), the Metabase dashboards
(hospital_ops.metabase.DASHBOARDS) and the Superset bundle (hospital_ops.bi.superset) are generated from
it. A chart only names columns of its rpt_ model: the spec holds no SQL, so no formula, month filter or
join can live in a dashboard.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

SPEC_FILE = Path(__file__).with_name("dashboards.yml")
BI_SCHEMA = "marts"  # where publish puts the rpt_ models (hospital_ops.pipeline.PUBLISHED_SCHEMAS)
CHART_TYPES = ("table", "line", "bar", "big_number")
PERCENT = "%"


class SpecError(ValueError):
    pass


@dataclass(frozen=True)
class Label:
    zh: str
    en: str
    unit: str | None = None

    @property
    def text(self) -> str:
        """`平均住院日（天） Average length of stay`: Chinese first, the unit beside it, English after."""
        unit = f"（{self.unit}）" if self.unit else ""
        return f"{self.zh}{unit} {self.en}"

    @property
    def is_percent(self) -> bool:
        return self.unit == PERCENT


@dataclass(frozen=True)
class Chart:
    key: str
    title_zh: str
    title_en: str
    type: str
    model: str
    columns: tuple[str, ...] = ()
    order_by: tuple[tuple[str, bool], ...] = ()  # (column, ascending)
    x: str | None = None
    series: str | None = None
    metrics: tuple[str, ...] = ()
    width: int = 12

    @property
    def title(self) -> str:
        return f"{self.title_zh} {self.title_en}"

    @property
    def relation(self) -> str:
        return f"{BI_SCHEMA}.{self.model}"

    @property
    def shown_columns(self) -> tuple[str, ...]:
        """Every column the chart puts on screen, in order."""
        if self.type == "table":
            return self.columns
        return tuple(c for c in (self.x, self.series, *self.metrics) if c)

    @property
    def read_columns(self) -> tuple[str, ...]:
        """Every column the chart reads (shown or sorted on)."""
        seen = dict.fromkeys(self.shown_columns)
        seen.update(dict.fromkeys(column for column, _ in self.order_by))
        return tuple(seen)


@dataclass(frozen=True)
class Dashboard:
    key: str
    title_zh: str
    title_en: str
    owner: str
    description: str
    charts: tuple[Chart, ...]
    filters: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return f"{self.title_zh} {self.title_en}"

    @property
    def models(self) -> list[str]:
        return sorted({chart.model for chart in self.charts})


@dataclass(frozen=True)
class Spec:
    labels: dict[str, Label]
    dashboards: tuple[Dashboard, ...] = field(default_factory=tuple)

    def label(self, column: str) -> Label:
        return self.labels[column]

    @property
    def models(self) -> list[str]:
        return sorted({model for dashboard in self.dashboards for model in dashboard.models})

    def model_columns(self) -> dict[str, list[str]]:
        """rpt_ model → the columns the dashboards read from it (including filter columns)."""
        columns: dict[str, dict[str, None]] = {}
        for dashboard in self.dashboards:
            for chart in dashboard.charts:
                columns.setdefault(chart.model, {}).update(dict.fromkeys(chart.read_columns))
        return {model: list(cols) for model, cols in sorted(columns.items())}


def _order(entry: str, where: str) -> tuple[str, bool]:
    parts = entry.split()
    if len(parts) == 1 or (len(parts) == 2 and parts[1] in ("asc", "desc")):
        return parts[0], not (len(parts) == 2 and parts[1] == "desc")
    raise SpecError(f"{where}: order_by entry {entry!r} is not `column` or `column asc|desc`")


def parse(document: dict, source: str = "dashboards.yml") -> Spec:
    labels = {}
    for column, label in (document.get("columns") or {}).items():
        if not label.get("zh") or not label.get("en"):
            raise SpecError(f"{source}: column {column!r} needs both a Chinese (zh) and an English (en) label")
        labels[column] = Label(str(label["zh"]), str(label["en"]), label.get("unit"))
    dashboards = []
    keys: set[str] = set()
    for entry in document.get("dashboards") or []:
        where = f"{source}: dashboard {entry.get('key')!r}"
        charts = []
        for raw in entry.get("charts") or []:
            chart_where = f"{where}, chart {raw.get('key')!r}"
            if raw.get("key") in keys:
                raise SpecError(f"{chart_where}: key used twice")
            keys.add(raw.get("key"))
            chart = Chart(
                key=raw["key"], title_zh=raw["title_zh"], title_en=raw["title_en"], type=raw["type"],
                model=raw["model"], columns=tuple(raw.get("columns") or ()),
                order_by=tuple(_order(o, chart_where) for o in raw.get("order_by") or ()),
                x=raw.get("x"), series=raw.get("series"),
                metrics=tuple(raw.get("metrics") or ([raw["metric"]] if raw.get("metric") else [])),
                width=int(raw.get("width", 12)),
            )
            _check_chart(chart, labels, chart_where)
            charts.append(chart)
        if not charts:
            raise SpecError(f"{where}: no chart")
        dashboard = Dashboard(key=entry["key"], title_zh=entry["title_zh"], title_en=entry["title_en"],
                              owner=entry["owner"], description=" ".join(str(entry["description"]).split()),
                              charts=tuple(charts), filters=tuple(entry.get("filters") or ()))
        for column in dashboard.filters:
            if column not in labels:
                raise SpecError(f"{where}: filter column {column!r} has no label under `columns`")
        dashboards.append(dashboard)
    if len({d.key for d in dashboards}) != len(dashboards):
        raise SpecError(f"{source}: two dashboards share a key")
    return Spec(labels, tuple(dashboards))


def _check_chart(chart: Chart, labels: dict[str, Label], where: str) -> None:
    if chart.type not in CHART_TYPES:
        raise SpecError(f"{where}: type {chart.type!r} is none of {', '.join(CHART_TYPES)}")
    if not chart.model.startswith("rpt_"):
        raise SpecError(f"{where}: reads {chart.model!r}; a chart reads an rpt_ model only")
    if not 1 <= chart.width <= 12:
        raise SpecError(f"{where}: width {chart.width} is not 1-12")
    if chart.type == "table" and not chart.columns:
        raise SpecError(f"{where}: a table lists its columns")
    if chart.type in ("line", "bar") and not (chart.x and chart.metrics):
        raise SpecError(f"{where}: a {chart.type} chart has an x column and metrics")
    if chart.type == "big_number" and len(chart.metrics) != 1:
        raise SpecError(f"{where}: a big number shows one metric")
    unlabelled = [c for c in chart.shown_columns if c not in labels]
    if unlabelled:
        raise SpecError(f"{where}: columns without a label under `columns`: {', '.join(unlabelled)}")


@lru_cache(maxsize=4)
def load(path: Path = SPEC_FILE) -> Spec:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: {exc}") from None
    return parse(document, str(path))


# ------------------------------------------------------------------------------ dbt exposures

EXPOSURES_HEADER = """\
# GENERATED from include/hospital_ops/bi/dashboards.yml by `hospital-ops bi exposures`: do not edit;
# change the spec and regenerate (tests/test_exposures.py fails when the two differ). One exposure per
# dashboard: the label is its title, depends_on the rpt_ models its charts read, published in `marts`
# and shown by Metabase (compose stack) and Superset (`hospital-ops bi`).
"""


def exposures_document(spec: Spec) -> dict:
    exposures = []
    for dashboard in spec.dashboards:
        charts = "; ".join(chart.title for chart in dashboard.charts)
        exposures.append({
            "name": f"{dashboard.key}_dashboard",
            "label": dashboard.title,
            "type": "dashboard",
            "maturity": "medium",
            "description": f"{dashboard.description} Charts: {charts}.",
            "depends_on": [f"ref('{model}')" for model in dashboard.models],
            "owner": {"name": dashboard.owner},
        })
    return {"version": 2, "exposures": exposures}


def exposures_yaml(spec: Spec) -> str:
    body = yaml.safe_dump(exposures_document(spec), allow_unicode=True, sort_keys=False, width=110)
    return EXPOSURES_HEADER + "\n" + body
