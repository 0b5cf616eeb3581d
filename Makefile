# One command per task; the same commands locally and in CI (docs/operations.md).
# The venv's interpreter: the distribution's CPython where it is 3.11+ with venv support (a
# PGO and LTO build: the server needs 15-20% less CPU on it than on a plain source build, see
# docs/operations.md), else the first python3 on PATH. PYTHON_BIN=... chooses another.
PYTHON_BIN ?= $(firstword $(shell for p in /usr/bin/python3 python3; do \
	"$$p" -c 'import ensurepip, sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& echo "$$p"; done) python3)
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
CONSTRAINTS := requirements/constraints.txt
# The test configuration's secret (DEBUG is off in tests, so one must be set). The suite's
# other test-only settings are in tests/conftest.py (pytest_configure).
TEST_ENV := SECRET_KEY=test-only-not-a-secret
PG_TEST_URL ?= postgres://postgres@127.0.0.1:5432/modelvault
ARGS ?=
# The suite runs on every core; tests that share a browser or the Redis of the Celery tests
# keep to one worker (tests/conftest.py). XDIST= runs it in one process.
XDIST ?= -n auto --dist loadgroup

.PHONY: install install-dev run serve worker test test-sqlite test-postgres screenshots lint \
        format migrations-check ci bench bench-http bench-statements lock clean

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON_BIN) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c $(CONSTRAINTS) -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed client/pyproject.toml
	$(PY) -m pip install -q -c $(CONSTRAINTS) -e '.[dev]' -e ./client
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

# Fresh clone -> install -> migrate -> demo data -> serve on 127.0.0.1:8000 (embedded default).
run: install
	DEBUG=true $(PY) manage.py migrate --noinput
	DEBUG=true $(PY) manage.py seed_demo
	@echo "Serving on http://127.0.0.1:8000/ (admin console: /admin/)"
	DEBUG=true $(PY) manage.py runserver 127.0.0.1:8000

# Production: migrate and collect static files (both idempotent), then gunicorn in the
# foreground (gunicorn.conf.py). HOST, PORT, WORKERS and THREADS come from the environment
# or the command line (`make serve PORT=8080 WORKERS=4`); settings as docs/operations.md says.
serve: install
	$(PY) manage.py migrate --noinput -v 0
	$(PY) manage.py collectstatic --noinput -v 0
	exec $(BIN)/gunicorn -c gunicorn.conf.py config.wsgi

# A Celery worker with beat (the outbox sweep) against CELERY_BROKER_URL (docs/notifications.md).
worker: install
	@test -n "$$CELERY_BROKER_URL" || { echo "set CELERY_BROKER_URL (e.g. redis://127.0.0.1:6379/0)"; exit 2; }
	$(BIN)/celery -A config worker -B --loglevel=INFO

test: install-dev
	$(TEST_ENV) $(BIN)/pytest $(XDIST) $(ARGS)

# CI: the suite on SQLite, then again on PostgreSQL with Redis and a real Celery worker.
# (An empty DATABASE_URL or CELERY_BROKER_URL is the embedded default: a value exported in
# the caller's shell must not turn the SQLite pass into a second PostgreSQL pass.)
test-sqlite: install-dev mlflow-server-venv
	$(TEST_ENV) DATABASE_URL= CELERY_BROKER_URL= REQUIRE_SERVICES=1 REQUIRE_BROWSER=1 \
		$(BIN)/pytest $(XDIST) -m "not postgres and not services" $(ARGS)

# A real MLflow server (the full `mlflow`, pinned with its dependencies in
# requirements/mlflow-server.txt) in a venv of its own, never in .venv: the importer's
# acceptance test (tests/mlflow_api/test_import.py) starts it. Built once (about 30 s).
MLFLOW_SERVER_VENV ?= var/mlflow-server-venv
.PHONY: mlflow-server-venv
mlflow-server-venv: $(MLFLOW_SERVER_VENV)/.installed

$(MLFLOW_SERVER_VENV)/.installed: requirements/mlflow-server.txt
	rm -rf $(MLFLOW_SERVER_VENV)
	$(PYTHON_BIN) -m venv $(MLFLOW_SERVER_VENV)
	$(MLFLOW_SERVER_VENV)/bin/python -m pip install -q --upgrade pip
	$(MLFLOW_SERVER_VENV)/bin/python -m pip install -q -r requirements/mlflow-server.txt
	touch $@

# The wheel's test runs its server on its own SQLite: the SQLite pass covers it (and the
# MLflow importer's, which starts a real MLflow server).
test-postgres: install-dev
	$(TEST_ENV) REQUIRE_SERVICES=1 REQUIRE_BROWSER=1 DATABASE_URL=$(PG_TEST_URL) \
		CELERY_BROKER_URL=$${CELERY_BROKER_URL:-redis://127.0.0.1:6379/15} $(BIN)/pytest $(XDIST) \
		-m "not wheel and not mlflow_server" $(ARGS)

# The production topology on this machine (docs/deploy.md, "A tested topology"): a throwaway
# database on the PostgreSQL of TOPOLOGY_PG_URL, a redis-server and moto's S3 server of its
# own on free ports, two gunicorn nodes and a Celery worker with beat, and a journey across
# them; about a minute, everything stopped at the end. Its tests are marked `topology`.
# Past TOPOLOGY_TIMEOUT seconds it is interrupted as by Ctrl-C (it still stops what it started).
TOPOLOGY_PG_URL ?= postgres://postgres@127.0.0.1:5432/postgres
TOPOLOGY_TIMEOUT ?= 600
.PHONY: test-topology
test-topology: install-dev
	$(TEST_ENV) DATABASE_URL= CELERY_BROKER_URL= REQUIRE_SERVICES=1 \
		TOPOLOGY_PG_URL=$(TOPOLOGY_PG_URL) timeout --signal=INT --kill-after=60 $(TOPOLOGY_TIMEOUT) \
		$(BIN)/pytest -n0 -m topology tests/topology $(ARGS)

# The README's screenshots (docs/screenshots), taken anew by the browser journey; the tests
# otherwise leave theirs under var/screenshots.
screenshots: install-dev
	$(TEST_ENV) SCREENSHOTS_DIR=docs/screenshots $(BIN)/pytest -q tests/e2e/test_journey.py \
		tests/e2e/test_register_journey.py

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrations-check: install-dev
	$(TEST_ENV) $(PY) manage.py makemigrations --check --dry-run

ci: lint migrations-check test-sqlite test-postgres test-topology

# Figures, not pass/fail: prints them and writes bench/results.json. SCALE=N for more models.
SCALE ?= 1000
# The notification figure uses one real worker on this Redis when it answers, else eager.
BENCH_CELERY_BROKER_URL ?= redis://127.0.0.1:6379/11
bench: install-dev
	$(TEST_ENV) BENCH_CELERY_BROKER_URL=$(BENCH_CELERY_BROKER_URL) $(PY) -m bench.run --scale $(SCALE)

# The API over HTTP: gunicorn (2 workers) on a throwaway PostgreSQL database, made and dropped
# through BENCH_PG_URL; writes bench/results-http.json. SCALE=N as above, ARGS for more options.
BENCH_PG_URL ?= postgres://postgres@127.0.0.1:5432/postgres
bench-http: install-dev
	$(TEST_ENV) BENCH_PG_URL=$(BENCH_PG_URL) $(PY) -m bench.http --scale $(SCALE) $(ARGS)

# Where a registration's CPU goes: the side-by-side harness's requests in process, on a
# throwaway PostgreSQL database of this host, with its backend's CPU per request and (ARGS=
# --statements) per statement. Figures only.
bench-statements: install-dev
	$(TEST_ENV) BENCH_PG_URL=$(BENCH_PG_URL) $(PY) -m bench.statements $(ARGS)

# Re-pin the exact versions CI installs, after changing a range in pyproject.toml.
lock: install-dev
	$(PY) -m pip freeze --exclude-editable > $(CONSTRAINTS)

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache *.egg-info
