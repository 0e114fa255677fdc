"""The settings object: types and ranges enforced, bad values named, README's table in step with it."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

import config
from config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
# Variables README documents that are not settings of the service itself.
NOT_SETTINGS = {"TEST_DATABASE_URL", "ONNXTR_CACHE_DIR", "SESSION_SECRET"}


@pytest.fixture
def clean_env(monkeypatch):
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def readme_variables() -> set[str]:
    text = (ROOT / "README.md").read_text()
    table = text[text.index("## Settings"):]
    table = table[:table.index("\n## ", 1)]
    first_cells = re.findall(r"^\|([^|]+)\|", table, re.M)
    return {name for cell in first_cells for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", cell)}


def test_readme_documents_every_setting_and_nothing_else():
    documented = readme_variables()
    assert documented - NOT_SETTINGS == set(Settings.model_fields)


@pytest.mark.parametrize("name, value", [
    ("WORKER_ENABLED", "ture"), ("PRELOAD_MODELS", "enabled"), ("PORT", "0"), ("PORT", "http"),
    ("MAX_FILE_SIZE_MB", "-1"), ("RETENTION_HOURS", "nan"), ("EXTRACTION_MIN_CONFIDENCE", "1.5"),
    ("OCR_DEFAULT_PROFILE", "fastest"), ("LOG_FORMAT", "xml"), ("EXTRACTION_REQUIRED_FIELDS", "monto,precio"), ("CLAIM_LEASE_SECONDS", "0"),
])
def test_a_bad_value_is_refused_naming_the_variable(clean_env, name, value):
    clean_env.setenv(name, value)
    with pytest.raises(ValidationError) as error:
        load_settings()
    assert name in str(error.value)


def test_booleans_lists_and_case(clean_env):
    for spelling, expected in (("true", True), ("1", True), ("on", True), ("no", False), ("0", False), ("OFF", False)):
        clean_env.setenv("WORKER_ENABLED", spelling)
        assert load_settings()["WORKER_ENABLED"] is expected
    clean_env.setenv("API_KEYS", " a , b,,")
    clean_env.setenv("LOG_LEVEL", "debug")
    settings = load_settings()
    assert settings["API_KEYS"] == ["a", "b"] and settings["LOG_LEVEL"] == "DEBUG"


def test_empty_variables_mean_the_default(clean_env):
    clean_env.setenv("PORT", "")
    clean_env.setenv("STORAGE_ROOT", "  ")
    settings = load_settings()
    assert settings["PORT"] == 5000


def test_overrides_are_validated_and_win_over_the_environment(clean_env, tmp_path):
    clean_env.setenv("OCR_BATCH_TIMEOUT_SECONDS", "300")
    settings = load_settings({"OCR_BATCH_TIMEOUT_SECONDS": 7, "STORAGE_ROOT": str(tmp_path), "TESTING": True})
    assert settings["OCR_BATCH_TIMEOUT_SECONDS"] == 7 and settings["TESTING"] is True
    assert settings["DATABASE_URL"] == f"sqlite:///{tmp_path / 'data' / 'ocr.db'}"
    assert settings["ASYNC_DIRECTORIES"]["inbox"] == str(tmp_path / "data" / "inbox")
    with pytest.raises(ValidationError, match="OCR_BATCH_TIMEOUT_SECONDS"):
        load_settings({"OCR_BATCH_TIMEOUT_SECONDS": 0})


def test_process_batch_timeout_comes_from_create_app(make_app):
    assert make_app(OCR_BATCH_TIMEOUT_SECONDS=9).extensions["ocr_runtime"].batch_timeout_seconds == 9


def test_models_dir_accepts_onnxtr_cache_dir(clean_env, tmp_path):
    clean_env.setenv("ONNXTR_CACHE_DIR", str(tmp_path))
    assert Settings().OCR_MODELS_DIR == tmp_path


def test_the_engine_views_come_from_the_same_object():
    assert config.OCR_CONFIG == config.SETTINGS.ocr_config()
    assert config.EXTRACTION_CONFIG["fields"] == list(config.FIELDS)
    assert config.MAX_IMAGE_PIXELS == config.SETTINGS.MAX_IMAGE_PIXELS


def test_a_bad_value_stops_the_service_before_it_starts(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "STORAGE_ROOT": str(tmp_path), "WORKER_ENABLED": "maybe"}
    done = subprocess.run([sys.executable, "-c", "import main; main.create_app()"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "WORKER_ENABLED" in done.stderr
    assert not (tmp_path / "data").exists()


def test_env_example_names_every_setting():
    names = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert names == set(Settings.model_fields)
