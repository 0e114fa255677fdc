# Two commands for a fresh machine: `make run` serves on port 5000, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install models models-int8 run worker migrate lint test test-fast bench accuracy clean-venv system-deps

# A line per step, with its time: pip and the model build are otherwise silent for minutes.
$(STAMP): requirements.txt requirements-dev.txt
	@echo "instalando dependencias (entorno $(VENV), pip)…"
	@start=$$(date +%s); \
		$(PYTHON) -m venv $(VENV) && \
		$(PY) -m pip install --quiet --upgrade pip && \
		$(PY) -m pip install --quiet -r requirements-dev.txt && \
		echo "dependencias instaladas en $$(( $$(date +%s) - start )) s"
	@touch $(STAMP)

# OCR models made from the shipped PP-OCRv6 files that the default settings use (the recognizers cut
# to the receipt alphabet), deterministic, ~10 s; `--check` (about a second when nothing changed)
# rebuilds what is missing or was built from other weights.
models: $(STAMP)
	@echo "construyendo modelos…"
	@start=$$(date +%s); $(PY) tools/quantize_models.py --check && \
		echo "modelos listos en $$(( $$(date +%s) - start )) s"
	@if [ "$$OCR_DETECTION_RUNTIME" = openvino ]; then echo "compilando el detector en OpenVINO…"; \
		$(PY) -m ocr.openvino_detection; fi

# The int8 detector, used only with OCR_INT8_DETECTION=true (calibrated on generated receipts, 1-2
# minutes); a process that needs it and finds it missing builds it itself, with a message.
models-int8: $(STAMP)
	@echo "construyendo el detector int8 (OCR_INT8_DETECTION=true)…"
	@start=$$(date +%s); $(PY) tools/quantize_models.py --check --only ppocrv6_tiny_det_int8 && \
		echo "detector int8 listo en $$(( $$(date +%s) - start )) s"

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

# Ctrl-C stops the service in order (gunicorn's own shutdown); make's "Error 130" is not a failure.
run: install
	@echo "iniciando el servicio (main.py serve)…"
	@$(PY) main.py; code=$$?; [ $$code -eq 0 ] || [ $$code -eq 130 ] || exit $$code

worker: install
	$(PY) main.py worker

migrate: install
	$(PY) main.py migrate

lint: install
	$(VENV)/bin/ruff check .

# Two pytest processes share the machine's cores; tests marked `serial` (timing-sensitive, or using
# every core themselves) run alone afterwards. TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 2

# Fonts before the int8 detector: it is calibrated on receipts drawn with the installed fonts.
test: system-deps install models-int8 lint
	$(PY) -m pytest -n $(TEST_WORKERS) -m "not serial"
	$(PY) -m pytest -m serial

test-fast: install
	$(PY) -m pytest -n $(TEST_WORKERS) -m "not slow"

bench: install
	$(PY) benchmarks/ocr_bench.py

accuracy: install
	$(PY) benchmarks/accuracy.py ../shared/receipts/real --generate 200
