# Two commands on a fresh clone: `make demo` (the main job) and `make test` (the whole suite).
# Each bootstraps .venv/ by itself on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.hydra-installed

.PHONY: demo test install clean-venv readme

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/hydra status
	$(BIN)/python reports/demo.py

test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash .ci/test.sh

clean-venv:
	rm -rf $(VENV)

readme: $(STAMP)
	$(BIN)/jupyter nbconvert --to markdown --stdout nbs/index.ipynb 2>/dev/null > README.md
