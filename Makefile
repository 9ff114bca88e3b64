# Fraudlake: `make demo` runs the platform, `make test` runs the whole suite. Both first run
# `make setup`, which installs whatever is missing (idempotent): the virtualenv in .venv with the
# pinned Python packages, and the JVM jars (Delta, Spark's Kafka connector, the Kafka broker)
# resolved by Maven from conf/jvm/*-pom.xml into .jars/.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
JARS := .jars
MVN := mvn -q -B -s conf/jvm/maven-settings.xml
FRAUDLAKE := $(BIN)/fraudlake
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: help setup venv jars demo airflow console lint test test-fast faults stop lock clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

setup: venv jars  ## Install what is missing: .venv (pinned packages) and the JVM jars

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found: Fraudlake needs Python 3.11 (set PYTHON=...)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

jars: $(JARS)/spark/.resolved $(JARS)/kafka/.resolved $(JARS)/catalog/.resolved $(JARS)/class-archive/.made

# The Spark driver's class-data archive (lakehouse/platform/class_archive.py): every Spark process
# then starts about 4 s sooner. Remade when the packages or the jars change; without it (or with a
# stale one) everything still runs, only slower to start.
$(JARS)/class-archive/.made: $(VENV)/.installed $(JARS)/spark/.resolved $(JARS)/catalog/.resolved
	@rm -rf $(JARS)/class-archive
	@$(BIN)/python -m lakehouse.platform.class_archive || echo "warning: no class-data archive: Spark processes start without it"
	@mkdir -p $(JARS)/class-archive && touch $@

$(JARS)/%/.resolved: conf/jvm/%-pom.xml conf/jvm/maven-settings.xml
	@command -v mvn >/dev/null || { echo "error: mvn not found: Fraudlake needs Maven to fetch its JVM jars"; exit 1; }
	@command -v java >/dev/null || { echo "error: java not found: Fraudlake needs Java 17"; exit 1; }
	@rm -rf $(JARS)/$*
	$(MVN) -f $< dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/$(JARS)/$*
	@touch $@

demo: setup  ## The whole product: platform up, first model if none, ingest + scoring, live traffic with alerts, summary; then stops everything
	@trap '$(MAKE) --no-print-directory stop' EXIT; trap 'exit 130' INT TERM; set -e; \
	$(FRAUDLAKE) kafka up; \
	$(FRAUDLAKE) catalog up; \
	$(FRAUDLAKE) topics ensure; \
	$(FRAUDLAKE) demo $(DEMO_ARGS); \
	$(FRAUDLAKE) reconcile

airflow: setup  ## Airflow (standalone, SQLite) with the retraining and maintenance DAGs; UI on :8080; Ctrl-C stops all
	@trap '$(MAKE) --no-print-directory stop' EXIT; trap 'exit 130' INT TERM; set -e; \
	$(FRAUDLAKE) kafka up; \
	$(FRAUDLAKE) catalog up; \
	$(FRAUDLAKE) topics ensure; \
	$(FRAUDLAKE) airflow

console: setup  ## The analysts' web console on loopback (http://127.0.0.1:8400; an account first: fraudlake console account add)
	@trap '$(MAKE) --no-print-directory stop' EXIT; trap 'exit 130' INT TERM; set -e; \
	$(FRAUDLAKE) kafka up; \
	$(FRAUDLAKE) catalog up; \
	$(FRAUDLAKE) topics ensure; \
	$(FRAUDLAKE) console

stop:  ## Stop the local broker, catalog server and Redis (data is kept)
	-@test -x $(FRAUDLAKE) && $(FRAUDLAKE) kafka down
	-@test -x $(FRAUDLAKE) && $(FRAUDLAKE) catalog down
	-@test -x $(FRAUDLAKE) && $(FRAUDLAKE) redis down

lint: venv  ## ruff (lint + format check) and the layer contract (import-linter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: setup lint  ## Lint, then the whole test suite (starts its own broker and Spark session)
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: setup lint  ## Lint, then the unit lane only (pure transforms, static DataFrames; no broker)
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

faults: setup  ## The long fault runs (every kill point of a job in turn, a cluster worker lost under both jobs; about 10 minutes) → docs/faults.md
	$(BIN)/pytest --faults $(PYTEST_ARGS)

lock:  ## Re-resolve pyproject.toml's pins and rewrite constraints.txt
	rm -rf /tmp/fraudlake-lock && $(PYTHON) -m venv /tmp/fraudlake-lock
	/tmp/fraudlake-lock/bin/pip install --quiet -e '.[dev]'
	{ sed -n '1,3p' constraints.txt; /tmp/fraudlake-lock/bin/pip freeze --exclude-editable | grep -viE '^(fraudlake|pip|setuptools|wheel)=='; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean: stop  ## Stop the local services and remove local runtime data (.fraudlake/); keeps .venv and .jars
	rm -rf .fraudlake
