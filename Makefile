# Set-up from nothing: `make demo` and `make test` create .venv and install the project first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is pinned for reproducible CPU runs; on a machine with its own torch (Colab) use requirements.txt.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1

.PHONY: venv demo test results lint format clean-venv

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[dev,deploy]"
	touch $@

demo: venv
	$(BIN)/ssformer demo

test: venv
	$(BIN)/python -m pytest -q

# results.png from a CPU sweep on the synthetic data (see README, "Results")
results: venv
	test -d data/synthetic/images || $(BIN)/ssformer synth data/synthetic --n 200 --size 176
	$(BIN)/ssformer split data/synthetic
	$(BIN)/ssformer sweep --cfg configs/synthetic-grid.yaml --no-progress
	$(BIN)/ssformer report output/synthetic-grid --out output/synthetic-grid/report --png results.png

lint: venv
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

clean-venv:
	rm -rf $(VENV)
