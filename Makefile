# One command each: `make demo` (see a workflow run) and `make test` (the whole suite).
# Both create ./.venv and install what they need; nothing else has to be on the machine but python3 >= 3.11.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: demo test bench bench-quick chaos lint clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench,dev]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/wfcelery demo

test: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed
	$(PY) -m benchmarks.run --full

bench-quick: $(VENV)/.installed
	$(PY) -m benchmarks.run --quick

# Chaos soak (minutes; not in `make test`): runs under Redis restarts and killed workers. CHAOS_ARGS=--help
chaos: $(VENV)/.installed
	$(PY) -m benchmarks.chaos $(CHAOS_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check wfcelery tests benchmarks examples
	$(VENV)/bin/mypy wfcelery

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
