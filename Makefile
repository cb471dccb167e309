# The README's two commands (demo, test). Each one sets up its own virtual environment first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test docs install clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $@

$(VENV)/.installed-docs: $(VENV)/.installed
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test,docs]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m skmm demo

test: $(VENV)/.installed
	$(PY) -m pytest -q --timeout=600 tests skmm --doctest-modules

# The docs site, warnings as errors; the gallery examples run (SKMM_DOCS_RUN_EXAMPLES=0 skips them).
docs: $(VENV)/.installed-docs
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache docs/_build docs/generated docs/auto_examples
