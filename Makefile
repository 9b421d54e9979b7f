# opsconsole: developer and operator entry points.
#
#   make run     set up everything and start web + worker + beat + demo feeder (Ctrl-C stops all)
#   make test    set up the virtualenv and run the whole suite (needs PostgreSQL and Redis)
#   make bench   push BENCH_RECORDS records through the real stack on PostgreSQL + Redis
#
# make test and make bench use DATABASE_URL / REDIS_URL from the environment, or the local defaults
# below. make run uses them only when they are set; unset, it runs embedded (SQLite + file broker).

PYTHON ?= python3
VENV := .venv
VENV_PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed

TEST_DATABASE_URL := postgres://postgres@127.0.0.1:5432/opsconsole
TEST_REDIS_URL := redis://127.0.0.1:6379/0

PYTEST_ARGS ?=
BENCH_RECORDS ?= 100000
BENCH_ARGS ?=

.PHONY: run test venv migrate bench smoke clean distclean

venv: $(STAMP)

$(VENV_PYTHON):
	$(PYTHON) -m venv $(VENV)

# Reinstall only when requirements.txt is newer than the stamp.
$(STAMP): requirements.txt | $(VENV_PYTHON)
	$(VENV_PYTHON) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

migrate: venv
	$(VENV_PYTHON) manage.py migrate --noinput

run: venv
	$(VENV_PYTHON) scripts/run_stack.py

test: venv
	DJANGO_SETTINGS_MODULE=opsconsole.settings.test \
	DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" \
	REDIS_URL="$${REDIS_URL:-$(TEST_REDIS_URL)}" \
	$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: venv
	DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" \
	REDIS_URL="$${REDIS_URL:-$(TEST_REDIS_URL)}" \
	$(VENV_PYTHON) bench/pipeline.py --records $(BENCH_RECORDS) $(BENCH_ARGS)

# The CI smoke test of `make run` in embedded mode (also called by .ci/run).
smoke: venv
	$(VENV_PYTHON) scripts/smoke_embedded.py

# Removes what running and testing leave behind (embedded database, broker folders, outputs,
# operator password, caches); the virtualenv stays (make distclean removes it too).
clean:
	rm -rf var/ staticfiles/ .pytest_cache/ bench/results/
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
