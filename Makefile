# The README's two commands. Both create .venv on first use and install everything into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Parallel test workers would fight over 2 cores and DDS ports; the suite runs serially.
PYTEST_ARGS ?=

.PHONY: demo test install clean bench

demo: $(STAMP)
	$(VENV)/bin/cvfm-ros demo

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

install: $(STAMP)

$(STAMP): requirements.txt setup.py setup.cfg package.xml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

bench: $(STAMP)
	$(VENV)/bin/cvfm-ros bench --json out/bench.json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
