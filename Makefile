# Insiders: the two commands that matter are `make run` and `make test` (see README.md).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export AIRFLOW_HOME ?= $(CURDIR)/airflow-home
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN ?= sqlite:///$(AIRFLOW_HOME)/airflow.db
export INSIDERS_HOME ?= $(CURDIR)/insiders-home
MONTHS ?= 2011-10-01 2011-11-01 2011-12-01

.PHONY: setup run report backfill dashboard test lint bench clean

$(BIN)/insiders: requirements.txt pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

setup: $(BIN)/insiders  ## create .venv with the pinned requirements and the package

run: setup  ## run the monthly DAG locally (Airflow, embedded stores, demo data unless INSIDERS_SOURCE)
	@mkdir -p $(AIRFLOW_HOME)
	$(BIN)/airflow db migrate > $(AIRFLOW_HOME)/migrate.log 2>&1
	@for day in $(MONTHS); do \
	  echo "== airflow dags test insiders_monthly $$day"; \
	  $(BIN)/airflow dags test insiders_monthly $$day > $(AIRFLOW_HOME)/dags-test-$$day.log 2>&1 \
	    || { tail -n 40 $(AIRFLOW_HOME)/dags-test-$$day.log; exit 1; }; \
	  grep -h "\[insiders\]" $(AIRFLOW_HOME)/dags-test-$$day.log | sed -E 's/^[^ ]+ \[info +\] //; s/ +\[insiders\].*//' ; \
	done
	@$(BIN)/python -m insiders.where

report: setup  ## one run of the whole flow without Airflow: insiders-out/ (INPUT=path for your data)
	$(BIN)/insiders run $(if $(INPUT),--input $(INPUT)) --out insiders-out

backfill: setup  ## the DAG's tasks for a range of months, in-process: make backfill FIRST=2011-03 LAST=2011-11
	$(BIN)/insiders backfill --first-month $(FIRST) --last-month $(LAST)

dashboard: setup  ## the Metabase cards rendered from the SQL store into one static page
	$(BIN)/insiders dashboard --out $(INSIDERS_HOME)/dashboard.html

test: setup  ## what CI runs: system packages, PostgreSQL, ruff, the whole test suite
	bash .ci/test.sh

lint: setup
	$(BIN)/ruff check .

bench: setup  ## speed and memory figures (see bench/README.md)
	$(BIN)/python bench/stages.py

clean:
	rm -rf insiders-out insiders-home airflow-home .pytest_cache
