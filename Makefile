# One command each: `make run` (set up + serve the API and the demo page), `make test`, `make lint`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1

.PHONY: venv run test lint format bench train-tiny-shapes

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,ray]'
	touch $@

run: venv
	$(BIN)/latentspace demo --host 127.0.0.1 --port 8000

test: venv
	$(BIN)/python -m pytest -n auto

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: venv
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

bench: venv
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	$(BIN)/python bench/bench_encoder.py
	$(BIN)/python bench/bench_index.py

train-tiny-shapes: venv
	$(BIN)/python -m latentspace.embedder.models.train_tiny_shapes
