"""The Python house style, checked by the tools configured in pyproject.toml: ruff over the code and its
tests and DAGs, mypy over the product package. Each test fails with the tool's own report."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
# mypy has its own environment beside the project's (requirements-lint.txt says why)
MYPY = VENV_BIN.parent / "lint" / "bin" / "mypy"


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)


def test_ruff_finds_nothing() -> None:
    result = _run([str(VENV_BIN / "ruff"), "check", "--no-cache", "include", "dags", "tests"])
    assert result.returncode == 0, f"ruff check found problems:\n{result.stdout}{result.stderr}"


def test_mypy_finds_nothing() -> None:
    assert MYPY.exists(), f"{MYPY} is missing: run `make install`"
    # the package's sources and the installed stubs are read from this interpreter's environment
    result = _run([str(MYPY), "--python-executable", sys.executable, "--cache-dir", str(REPO / "var" / "mypy_cache")])
    assert result.returncode == 0, f"mypy found problems:\n{result.stdout}{result.stderr}"
    assert "Success: no issues found" in result.stdout, result.stdout
