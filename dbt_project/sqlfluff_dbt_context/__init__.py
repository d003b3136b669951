"""What dbt gives a model at compile time, for sqlfluff's jinja templater (`library_path` in .sqlfluff).

sqlfluff's dbt builtins render `ref`, `source`, `config` and `this` as placeholders, but `var()` as the
string "item" (so `var('month_close_day') - 1` fails to render) and know nothing of `adapter`, `dbt.*`
or `run_query`. Here `var()` returns the project's own value from dbt_project.yml, and the calls that
need a warehouse answer as dbt does while parsing (`execute` is false): no columns, no query result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

_PROJECT_VARS: dict[str, Any] = yaml.safe_load(
    (Path(__file__).resolve().parent.parent / "dbt_project.yml").read_text(encoding="utf-8"))["vars"]

execute = False  # dbt's parse phase: the catalog is not read


def var(name: str, default: Any = None) -> Any:
    value = _PROJECT_VARS.get(name)
    return default if value is None else value


def run_query(sql: str) -> None:
    return None


class _Adapter:
    @staticmethod
    def get_columns_in_relation(relation: Any) -> list[Any]:
        return []

    @staticmethod
    def quote(identifier: str) -> str:
        return f'"{identifier}"'


class _Dbt:
    @staticmethod
    def current_timestamp() -> str:
        return "now()"  # dbt-postgres' postgres__current_timestamp


adapter = _Adapter()
dbt = _Dbt()
