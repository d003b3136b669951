"""The product and the simulators are apart: the product's wheel (what the Airflow image installs) holds
no simulator module, and no module of the product, nor a DAG, imports the simulators, not even lazily
inside a function."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ROOT / "include" / "hospital_ops"
SIM = ROOT / "include" / "hospital_ops_sim"
SIM_PACKAGE = "hospital_ops_sim"


def _build_wheel(project: Path, out: Path) -> Path:
    """The wheel pip builds, as the image's `pip install` does: in build isolation, with the backend the
    pyproject.toml asks for (the virtualenv's own setuptools may be older and lack bdist_wheel)."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--wheel-dir", str(out), str(project)], check=True, capture_output=True, text=True, timeout=300)
    (wheel,) = out.glob("*.whl")
    return wheel


def _modules(wheel: Path) -> set[str]:
    """The top-level packages a wheel installs (the first path element of each .py it holds)."""
    with zipfile.ZipFile(wheel) as archive:
        return {name.split("/", 1)[0] for name in archive.namelist() if name.endswith(".py")}


def _py_files(wheel: Path, package: str) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {name for name in archive.namelist() if name.startswith(f"{package}/") and name.endswith(".py")}


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of what the build reads (both packages are in it, as in the repository): building from a
    copy leaves no build/ or egg-info behind in the working tree."""
    root = tmp_path_factory.mktemp("checkout")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, root / name)
    shutil.copytree(ROOT / "include", root / "include",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"))
    return root


def test_the_product_wheel_holds_the_product_and_no_simulator(checkout: Path, tmp_path: Path) -> None:
    wheel = _build_wheel(checkout, tmp_path / "product")
    assert _modules(wheel) == {"hospital_ops"}, wheel.name
    expected = {f"hospital_ops/{p.relative_to(PRODUCT).as_posix()}" for p in PRODUCT.rglob("*.py")
                if "__pycache__" not in p.parts}
    assert _py_files(wheel, "hospital_ops") == expected
    assert not _py_files(wheel, SIM_PACKAGE)


def test_the_simulators_wheel_is_what_the_check_would_catch(checkout: Path, tmp_path: Path) -> None:
    """The planted case: the simulators' own distribution does hold hospital_ops_sim, and the same
    reading of a wheel finds it."""
    wheel = _build_wheel(checkout / "include" / SIM_PACKAGE, tmp_path / "sim")
    assert _modules(wheel) == {SIM_PACKAGE}
    expected = {f"{SIM_PACKAGE}/{p.relative_to(SIM).as_posix()}" for p in SIM.rglob("*.py")
                if "__pycache__" not in p.parts}
    assert _py_files(wheel, SIM_PACKAGE) == expected


def imported_modules(source: str, filename: str = "<source>") -> set[str]:
    """Every module a Python source imports, wherever the import is (module level, a function, a
    branch), and every literal name given to importlib.import_module or __import__."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in {"import_module", "__import__"}:
                found.add(node.args[0].value)
    return found


def _imports_sim(modules: set[str]) -> set[str]:
    return {m for m in modules if m == SIM_PACKAGE or m.startswith(f"{SIM_PACKAGE}.")}


def test_nothing_in_the_product_or_the_dags_imports_the_simulators() -> None:
    files = [p for p in [*PRODUCT.rglob("*.py"), *(ROOT / "dags").rglob("*.py")] if "__pycache__" not in p.parts]
    assert len(files) > 20
    offenders = {str(p.relative_to(ROOT)): sorted(_imports_sim(imported_modules(p.read_text(encoding="utf-8"), str(p))))
                 for p in files}
    assert {path: found for path, found in offenders.items() if found} == {}


@pytest.mark.parametrize("planted", [
    "from hospital_ops_sim.his import generate_his",
    "import hospital_ops_sim.survey_api as api",
    "def f():\n    from hospital_ops_sim import bench\n    return bench",
    "import importlib\nmodule = importlib.import_module('hospital_ops_sim.vendor')",
])
def test_the_import_check_finds_a_planted_import(planted: str) -> None:
    assert _imports_sim(imported_modules(planted))


def test_the_import_check_leaves_the_product_s_own_imports() -> None:
    source = "from hospital_ops import warehouse\nimport hospital_ops.cli\n'''hospital_ops_sim in prose'''"
    assert imported_modules(source) == {"hospital_ops", "hospital_ops.cli"}
    assert not _imports_sim(imported_modules(source))


def _commands(parser) -> set[str]:  # type: ignore[no-untyped-def]
    import argparse

    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(sub.choices)


def test_the_simulators_commands_are_hospital_ops_sim_s_and_forward_the_product_s() -> None:
    from hospital_ops.cli import build_parser as product_parser
    from hospital_ops_sim.cli import build_parser as sim_parser

    simulated = {"generate", "demo", "bench"}
    assert not simulated & _commands(product_parser())
    assert simulated <= _commands(sim_parser())
    # run-night and airflow pass everything after them to the product's command of that name
    assert {"run-night", "airflow"} <= _commands(product_parser()) & _commands(sim_parser())
    args = sim_parser().parse_args(["airflow", "up", "--manual-only"])
    assert args.product_args == ["up", "--manual-only"]
    assert product_parser().parse_args(["airflow", *args.product_args]).manual_only
    args = sim_parser().parse_args(["run-night", "2026-11-30", "--force-publish"])
    assert product_parser().parse_args(["run-night", *args.product_args]).force_publish
