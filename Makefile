# The two commands: `make run` (set up and start everything, embedded) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint cluster-up cluster-down bench clean-data messages

# The portal's translations (locale/<lang>/LC_MESSAGES/django.po -> .mo; needs GNU gettext).
# Also run after editing a .po file; `makemessages` (see README "Translations") refreshes them.
messages:
	@if command -v msgfmt >/dev/null; then $(PY) manage.py compilemessages --ignore=.venv --ignore=var; \
	else echo "gettext (msgfmt) not installed: using the committed .mo files"; fi

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	$(MAKE) --no-print-directory messages
	touch $(STAMP)

run: $(STAMP)
	$(PY) scripts/run.py

test: $(STAMP)
	$(PY) scripts/test.py $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run

clean-data:
	rm -rf var/

# The production topology on this machine (nginx -> 2 gunicorn, a Celery worker per queue, beat)
# against local PostgreSQL and Redis; see README "Production deployment" and deploy/cluster --help.
cluster-up: $(STAMP)
	$(PY) deploy/cluster up

cluster-down: $(STAMP)
	$(PY) deploy/cluster down

# The serving benchmark (platform vs a bare Flask app, batch vs raw predict) on local PostgreSQL
# and Redis; writes docs/benchmarks.md. Uses Debian's wrk as the load generator when installed.
bench: $(STAMP)
	$(PY) bench/serving_bench.py
