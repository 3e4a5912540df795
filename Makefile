# Set-up from nothing: `make demo` and `make test` create .venv and install the project first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is pinned for reproducible CPU runs; on a machine with its own torch (Colab) use requirements.txt.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1

.PHONY: venv demo test test-newest results lint format clean-venv

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[dev,deploy]"
	touch $@

# The users' environment: the newest release of every dependency the index offers (torch stays
# pinned), without the dev extra's pins. PySODMetrics, the metric tests' reference, pins
# OpenCV < 5 and NumPy < 2.3.5 as a precaution; it is installed without its pins so that the
# parity tests run under the newest OpenCV and NumPy too.
NEWEST ?= .venv-newest
NEWEST_TESTS := tests/test_metrics.py tests/test_metric_suite.py tests/test_check_data.py \
	tests/test_datasets.py tests/test_predict.py tests/test_export.py tests/test_notebook.py \
	tests/test_report.py tests/test_dependencies.py

$(NEWEST)/.installed: pyproject.toml
	$(PYTHON) -m venv $(NEWEST)
	$(NEWEST)/bin/python -m pip install --quiet --upgrade pip
	$(NEWEST)/bin/python -m pip install --quiet $(TORCH_SPEC)
	$(NEWEST)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -e ".[deploy]" \
		pytest nbclient nbformat ipykernel scikit-image scikit-learn
	$(NEWEST)/bin/python -m pip install --quiet --no-deps pysodmetrics
	touch $@

test-newest: $(NEWEST)/.installed
	$(NEWEST)/bin/python -m pip list --format=freeze | grep -i -E '^(opencv|numpy|pillow|timm|scipy|onnx|openvino|matplotlib)'
	$(NEWEST)/bin/python -m pytest -q $(NEWEST_TESTS)

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
