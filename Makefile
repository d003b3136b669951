# Two commands on a fresh machine with Python 3.11: `make demo` and `make test`.
# Both create (or reuse) the project-local virtualenv .venv and install what they need.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench bi warehouse-start warehouse-stop airflow airflow-down clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml include/hospital_ops_sim/pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip install --quiet --no-deps -e include/hospital_ops_sim
	touch $(STAMP)

install: $(STAMP)

# the demo and the benchmark run on the simulated sources: the development command hospital-ops-sim
demo: install
	$(BIN)/hospital-ops-sim demo --scheduler

test: install
	$(BIN)/python -m pytest

# BENCH_ARGS="--scales 1,4 --repetitions 3" or "--quick"; figures go to var/bench/<timestamp>.json
bench: install
	$(BIN)/hospital-ops-sim bench $(BENCH_ARGS)

# the dashboards on a local Apache Superset (installed into var/superset/venv on first use)
bi: install
	$(BIN)/hospital-ops bi

warehouse-start: install
	$(BIN)/hospital-ops warehouse start

warehouse-stop: install
	$(BIN)/hospital-ops warehouse stop

# the local Airflow deployment (API server + UI, scheduler, DAG processor, triggerer); prints URL and login
airflow: install
	$(BIN)/hospital-ops airflow up

airflow-down: install
	$(BIN)/hospital-ops airflow down

clean:
	-$(BIN)/hospital-ops airflow down
	-$(BIN)/hospital-ops warehouse stop
	rm -rf var dbt_project/target dbt_project/logs

# mypy in its own environment beside the project's (see requirements-lint.txt for why)
LINT_STAMP := $(VENV)/lint/.installed
$(LINT_STAMP): requirements-lint.txt
	test -x $(VENV)/lint/bin/python || $(PYTHON) -m venv $(VENV)/lint
	$(VENV)/lint/bin/python -m pip install --quiet -r requirements-lint.txt
	touch $(LINT_STAMP)

install: $(LINT_STAMP)
