# Spark enrichment jobs with a Postgres reference store. `make help` lists the targets.
# Every target loads conf/local.env underneath your own environment (yours wins).

SHELL := /bin/bash
.DEFAULT_GOAL := help
RUN := scripts/with_env.sh
PY := .venv/bin/python
DEMO_ROWS ?= 20000
# make test: 0 runs every test in one process. N > 0 runs the independent tests on N workers,
# then the ones that stop a server alone: for machines with cores to spare (on 2 cores the
# tests are CPU-bound and two workers took as long as one).
TEST_WORKERS ?= 0
DB_ROLE ?= reporting
OUT ?= .stack/data/transactions-$(shell date +%Y%m%d-%H%M%S).csv

.PHONY: help setup up down status seed demo generate ingest submit-batch land submit-stream backup backups restore maintain monitor-up monitor-down spark-sql psql \
        package cluster-up cluster-down test test-quick test-faults test-unit bench check fmt clean clean-state

help: ## List the targets
	@echo "Spark enrichment jobs with a Postgres reference store"
	@echo
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'
	@echo
	@echo "Variables: SQL=\"...\" (spark-sql, psql), DB_ROLE=reporting|pipeline|admin (psql),"
	@echo "           FILES=... (ingest, land), ARGS=... (submit-batch, submit-stream, maintain), BACKUP=<id> (restore),"
	@echo "           ROWS=N OUT=path (generate), DEMO_ROWS=N (demo), SPARK_MASTER=... (submit-batch),"
	@echo "           ROWS=N MERCHANTS=N SIZES=a,b,c BENCH_ARGS=... (bench; defaults 10M rows, 100k merchants)"
	@echo "           TEST_WORKERS=N (test; default 0: one process; N workers on a bigger machine)"

setup: ## Install the virtualenv, JARs, MinIO and PostgreSQL (cached in ~/.cache/spark-enrich)
	@scripts/setup.sh

up: setup ## Start the local stack: PostgreSQL and MinIO on 127.0.0.1, buckets created
	@$(RUN) scripts/stack.sh up

down: ## Stop the local stack and the monitoring servers (data is kept in .stack/)
	@$(RUN) scripts/monitor.sh down
	@$(RUN) scripts/stack.sh down

status: ## Show whether PostgreSQL and MinIO are running
	@$(RUN) scripts/stack.sh status

seed: up ## Create the roles and apply reference_sql/*.sql as the admin (rerunnable)
	@$(RUN) scripts/seed.sh

demo: seed ## Run the whole flow once: generate, ingest, enrich, print the run summary
	@$(RUN) $(PY) -m scripts.generate_transactions --rows $(DEMO_ROWS) --output $(OUT)
	@$(RUN) scripts/submit.sh ingest $(OUT)
	@$(RUN) scripts/submit.sh batch_enrich

generate: setup ## Write ROWS generated transactions to OUT (csv or jsonl)
	@$(RUN) $(PY) -m scripts.generate_transactions --rows $(or $(ROWS),10000) --output $(OUT)

ingest: setup ## Append FILES (csv/jsonl, local or s3a://) to the raw Delta table
	@test -n "$(FILES)" || { echo "usage: make ingest FILES='a.csv b.jsonl'" >&2; exit 2; }
	@$(RUN) scripts/submit.sh ingest $(FILES)

submit-batch: setup ## spark-submit the batch enrichment job (ARGS=--full, SPARK_MASTER=spark://...)
	@$(RUN) scripts/submit.sh batch_enrich $(ARGS)

land: setup ## Drop FILES (csv/jsonl) into the streaming job's landing prefix
	@test -n "$(FILES)" || { echo "usage: make land FILES='a.csv b.jsonl'" >&2; exit 2; }
	@$(RUN) $(PY) -m scripts.land $(FILES)

submit-stream: setup ## spark-submit the streaming job on the landing prefix (ARGS="--trigger 5s" or --available-now)
	@$(RUN) scripts/submit.sh stream_enrich $(ARGS)

backup: setup ## Back up PostgreSQL and the tables' versions at one consistent point (conf [backup])
	@$(RUN) $(PY) -m jobs.backup

backups: setup ## List the backups: id, run, the tables' versions, size
	@$(RUN) $(PY) -m jobs.backup --list

restore: setup ## Restore BACKUP=<id>: PostgreSQL to its dump, curated and quarantine to its versions
	@test -n "$(BACKUP)" || { echo "usage: make restore BACKUP=<id> (make backups lists them)" >&2; exit 2; }
	@$(RUN) scripts/submit.sh restore $(BACKUP) $(ARGS)

maintain: setup ## OPTIMIZE curated and quarantine, then VACUUM what nothing needs (ARGS=--dry-run)
	@$(RUN) scripts/submit.sh maintain $(ARGS)

monitor-up: seed ## Start Prometheus, a Pushgateway and the PostgreSQL exporter on 127.0.0.1
	@$(RUN) scripts/monitor.sh up

monitor-down: ## Stop the monitoring servers
	@$(RUN) scripts/monitor.sh down

spark-sql: setup ## spark-sql with the tables by name; SQL="..." runs one statement
	@$(RUN) scripts/spark_sql.sh

package: setup ## Build build/jobs.zip, the job code spark-submit ships to executors
	@$(PY) scripts/package.py

cluster-up: setup ## Start a Spark standalone master and 2 workers on 127.0.0.1:7077
	@$(RUN) scripts/cluster.sh up

cluster-down: ## Stop the standalone cluster
	@$(RUN) scripts/cluster.sh down

psql: ## psql as the read-only reporting role (DB_ROLE=pipeline|admin); SQL="..." runs one statement
	@if [ -n "$(SQL)" ]; then $(RUN) scripts/psql.sh --role=$(DB_ROLE) -X -c "$(SQL)"; else $(RUN) scripts/psql.sh --role=$(DB_ROLE); fi

test: export ENRICH_STACK = local
test: up ## Run every test (unit, integration, system) against the local stack; prints where the time went
ifeq ($(TEST_WORKERS),0)
	@$(RUN) $(PY) -m pytest
else
	@$(RUN) $(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal -m "not exclusive"
	@$(RUN) $(PY) -m pytest -m exclusive
endif

test-quick: export ENRICH_STACK = local
test-quick: up ## The inner loop: unit tests plus one end-to-end run on the local stack (~2 min)
	@$(RUN) $(PY) -m pytest tests/unit tests/integration/test_pipeline.py

test-faults: export ENRICH_STACK = local
test-faults: up ## Run only the fault suite (kills runs, stops servers, bad inputs, drift)
	@$(RUN) $(PY) -m pytest -m faults tests/integration tests/system

test-unit: setup ## Run the unit tests only (no servers needed)
	@$(RUN) $(PY) -m pytest tests/unit

bench: seed ## Measure the job against its Spark floor, DuckDB + delta-rs and pandas (ROWS, MERCHANTS)
	@$(RUN) $(PY) -m scripts.bench.run --rows $(or $(ROWS),10000000) --merchants $(or $(MERCHANTS),100000) \
	  $(if $(SIZES),--sizes $(SIZES)) $(BENCH_ARGS)

check: setup ## Lint, format check and type check (ruff, mypy)
	@$(PY) -m ruff check .
	@$(PY) -m ruff format --check .
	@$(PY) -m mypy

fmt: setup ## Format the code (ruff)
	@$(PY) -m ruff check --fix .
	@$(PY) -m ruff format .

clean: ## Remove build output
	rm -rf build .pytest_cache .mypy_cache .ruff_cache

clean-state: down ## Stop the stack and delete its data (.stack/)
	rm -rf .stack
