# Two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint docs bench clean

$(BIN)/vqvae: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip >/dev/null
	# torch first, from the pinned version, so no other requirement pulls a different build
	$(BIN)/pip install -c constraints.txt torch
	$(BIN)/pip install -c constraints.txt -e ".[dev,serve,export]"
	touch $@

demo: $(BIN)/vqvae
	$(BIN)/vqvae demo --out runs/demo --force

test: $(BIN)/vqvae
	$(BIN)/python -m pytest -q

lint: $(BIN)/vqvae
	$(BIN)/ruff check .

# the documentation site, offline, into site/ (open site/index.html); --strict: a broken link or
# a docstring reference that no longer exists fails the build
docs: $(BIN)/vqvae
	$(BIN)/pip install -q -c constraints.txt -e ".[docs]"
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: $(BIN)/vqvae
	$(BIN)/pip install -c constraints.txt -e ".[bench]"
	$(BIN)/python benchmarks/quantizer.py

clean:
	rm -rf $(VENV) runs site
