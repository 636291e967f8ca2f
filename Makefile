# Two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/vqvae: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip >/dev/null
	# torch first, from the pinned version, so no other requirement pulls a different build
	$(BIN)/pip install -c constraints.txt torch
	$(BIN)/pip install -c constraints.txt -e ".[dev,export]"
	touch $@

demo: $(BIN)/vqvae
	$(BIN)/vqvae demo --out runs/demo --force

test: $(BIN)/vqvae
	$(BIN)/python -m pytest -q

lint: $(BIN)/vqvae
	$(BIN)/ruff check .

bench: $(BIN)/vqvae
	$(BIN)/pip install -c constraints.txt -e ".[bench]"
	$(BIN)/python benchmarks/quantizer.py

clean:
	rm -rf $(VENV) runs
