"""Shared fixtures. The OCR engine is loaded once per test session: model loading is the slow part."""
import pytest

from aplicador_ocr import get_aplicador


@pytest.fixture(scope="session")
def engine():
    aplicador = get_aplicador()
    aplicador.preload("ultra_rapido")
    return aplicador
