# Two commands for a fresh machine: `make run` serves on port 5000, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install models run worker migrate lint test test-fast bench accuracy clean-venv system-deps

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# OCR models made from the shipped PP-OCRv6 files (int8 detector, recognizers cut to the receipt
# alphabet), deterministic, ~25 s; `--check` (a few seconds when nothing changed) rebuilds what is
# missing, was built from other weights, or was calibrated on receipts drawn otherwise (fonts, generator).
models: $(STAMP)
	$(PY) tools/quantize_models.py --check

install: $(STAMP) models

# Fonts for the synthetic receipt generator (Debian packages). Optional: DejaVu alone works.
system-deps:
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		missing=""; for p in fonts-dejavu-core fonts-liberation2 fonts-roboto; do \
			dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
		if [ -n "$$missing" ]; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
			|| echo "warning: could not install$$missing; the generator falls back to DejaVu"; fi; \
	fi

run: install
	$(PY) main.py

worker: install
	$(PY) main.py worker

migrate: install
	$(PY) main.py migrate

lint: install
	$(VENV)/bin/ruff check .

# Two pytest processes share the machine's cores; tests marked `serial` (timing-sensitive, or using
# every core themselves) run alone afterwards. TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 2

# Fonts before install: the int8 detector is calibrated on receipts drawn with the installed fonts.
test: system-deps install lint
	$(PY) -m pytest -n $(TEST_WORKERS) -m "not serial"
	$(PY) -m pytest -m serial

test-fast: install
	$(PY) -m pytest -n $(TEST_WORKERS) -m "not slow"

bench: install
	$(PY) benchmarks/ocr_bench.py

accuracy: install
	$(PY) benchmarks/accuracy.py ../shared/receipts/real --generate 200
