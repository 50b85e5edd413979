# Every target sets up .venv itself, so a fresh machine needs only Python 3.10+ and make.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv run test lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: venv
	$(BIN)/medattn train --data synthetic:derm-synth?n=2000\&size=32 --backbone resnet18 --attention se \
		--epochs 3 --out runs/example

lint: venv
	$(BIN)/ruff check src tests bench

test: lint
	$(BIN)/python -m pytest -q

bench: venv
	$(BIN)/python bench/data_pipeline.py

clean:
	rm -rf $(VENV) runs .pytest_cache
