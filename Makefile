# The README's two commands. Each one sets up its own virtual environment first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test install clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m skmm demo

test: $(VENV)/.installed
	$(PY) -m pytest -q --timeout=600

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
