"""OrquestadorOCR: a batch of images in, one per-image document out for each.

The engine (AplicadorOCR) reads the text; the extractor turns it into the 16 business fields; a
page whose first reading left a key value unread under its label or unsure is read again closer
(extraction/second_reading.py). An image that cannot be read becomes an error document with its
reason, and the rest of the batch goes on. The document shape is the seed's (request_id,
filename, processing_metadata, texts, extracted_fields, palabras_detectadas) plus the upload
metadata, campos_detalle and validacion.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import config
from aplicador_ocr import AplicadorOCR, get_aplicador
from extraction.banks import get_catalog
from extraction.extractor import extract_fields
from extraction.rules import get_registry
from extraction.second_reading import fields_to_reread, take_second_reading
from ocr.image_safety import ImageRejected
from process_wide import process_wide
from validador_ocr import ValidadorOCR

logger = logging.getLogger(__name__)



@dataclass
class ImagenLote:
    """One image of a batch: its stored name, its bytes and the metadata it was uploaded with."""

    filename: str
    image_bytes: bytes
    metadata: dict[str, Any] = field(default_factory=dict)


def _timestamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def empty_fields() -> dict[str, None]:
    return {name: None for name in config.FIELDS}


def error_document(item_filename: str, metadata: dict[str, Any], request_id: str | None, profile: str | None,
                   language: str, code: str, message: str) -> dict[str, Any]:
    """The document of an image that could not be processed: same keys, empty content, a reason."""
    return {
        "request_id": request_id,
        "filename": item_filename,
        "processing_status": "error",
        "error": {"code": code, "message": message},
        "processing_metadata": {
            "timestamp": _timestamp(),
            "profile_used": profile,
            "processing_time": 0.0,
            "method_used": None,
            "coordinates_available": 0,
            "confidence_average": 0.0,
            "language": language,
            "text_length": 0,
        },
        "metadata": metadata,
        "original_text_ocr": "",
        "structured_text_ocr": "",
        "extracted_fields": empty_fields(),
        "campos_detalle": {},
        "validacion": {},
        "palabras_detectadas": [],
        "lineas": [],
    }


class OrquestadorOCR:
    def __init__(self, aplicador: AplicadorOCR | None = None) -> None:
        # One engine per process: its models are the expensive part and are shared by every caller.
        self.aplicador = aplicador or get_aplicador()

    def preload(self, profile: str | None = None) -> None:
        self.aplicador.preload(profile)

    def profiles(self) -> list[str]:
        return self.aplicador.profiles()

    def status(self) -> dict[str, Any]:
        return self.aplicador.status()

    def procesar_lote_imagenes(
        self,
        items: list[ImagenLote],
        profile: str | None = None,
        # Accepted for the seed's clients and recorded in the documents; it selects no model.
        language: str = "spa",
        request_id: str | None = None,
        include_coordinates: bool = True,
    ) -> list[dict[str, Any]]:
        """One document per item, in order. Raises ValueError only for an unknown profile."""
        profile_name = self.aplicador.resolve_profile(profile)
        if not items:
            return []
        outcomes = self._ocr(items, profile_name)
        read = [(item, outcome) for item, outcome in zip(items, outcomes) if not isinstance(outcome, ImageRejected)]
        extractions = iter(self.extraer_campos([item.image_bytes for item, _ in read], [ocr for _, ocr in read],
                                               profile_name, [item.filename for item, _ in read]))
        documents = []
        for item, outcome in zip(items, outcomes):
            if isinstance(outcome, ImageRejected):
                documents.append(error_document(item.filename, item.metadata, request_id, profile_name, language,
                                                outcome.code, outcome.message))
                continue
            documents.append(self._document(item, outcome, next(extractions), language, request_id, include_coordinates))
        return documents

    def extraer_campos(self, images: list[bytes], ocrs: list[dict[str, Any]], profile: str,
                       names: list[str] | None = None, first: list[dict[str, Any]] | None = None
                       ) -> list[dict[str, Any]]:
        """The fields of each page read (`ocrs`, from `images`), with a second, closer reading of
        the pages whose first left a key value unread under its label or unsure. `first`: the
        pages' extractions when the caller has them already (benchmarks/accuracy.py times them)."""
        profile = self.aplicador.resolve_profile(profile)
        names = names or [f"#{index}" for index in range(len(images))]
        rules = get_registry().current
        extractions = list(first) if first is not None else [self._extract(ocr, name) for ocr, name in zip(ocrs, names)]
        canvas = max(self.aplicador.config["profiles"][profile].get("det_input_size") or (0,))
        wanted = {index: fields_to_reread(extraction, rules, max(ocr.get("image_size") or (0,)) > canvas)
                  for index, (extraction, ocr) in enumerate(zip(extractions, ocrs))}
        again = [index for index, fields in wanted.items() if fields]
        if not again or not self.aplicador.reads_closer(profile):
            return extractions
        try:
            closer = self.aplicador.procesar_lote([images[index] for index in again], profile, closer=True)
        except Exception:
            # The first reading stands: a second look that fails costs nothing but the look.
            logger.exception("Second, closer reading of %d pages failed", len(again))
            return extractions
        validator = ValidadorOCR(config.EXTRACTION_CONFIG, get_catalog())
        for index, second in zip(again, closer):
            if isinstance(second, ImageRejected):
                continue
            extractions[index] = take_second_reading(extractions[index], self._extract(second, names[index]),
                                                     wanted[index], validator)
            extractions[index]["metadatos_extraccion"]["segunda_lectura"]["tiempo_s"] = second["processing_time"]
        return extractions

    @staticmethod
    def _extract(ocr: dict[str, Any], name: str) -> dict[str, Any]:
        try:
            return extract_fields(ocr)
        except Exception as exc:
            # The text is still worth keeping; the fields stay empty and the reason is recorded.
            logger.exception("Field extraction failed for %s", name)
            return {"extracted_fields": empty_fields(), "campos_detalle": {},
                    "validacion": {"error": f"extraction_failed: {type(exc).__name__}"}}

    def _ocr(self, items: list[ImagenLote], profile: str) -> list[dict[str, Any] | ImageRejected]:
        try:
            return self.aplicador.procesar_lote([item.image_bytes for item in items], profile)
        except ValueError:
            raise
        except Exception:
            # Something broke the batch as a whole; retry one by one so only the culprit fails.
            logger.exception("OCR batch of %d images failed; retrying image by image", len(items))
        outcomes: list[dict[str, Any] | ImageRejected] = []
        for item in items:
            try:
                outcomes.append(self.aplicador.procesar_imagen(item.image_bytes, profile))
            except ImageRejected as exc:
                outcomes.append(exc)
            except Exception as exc:
                logger.exception("OCR failed for %s", item.filename)
                outcomes.append(ImageRejected("ocr_failed", f"The OCR engine failed on this image: {type(exc).__name__}"))
        return outcomes

    def _document(self, item: ImagenLote, ocr: dict[str, Any], extraction: dict[str, Any], language: str,
                  request_id: str | None, include_coordinates: bool) -> dict[str, Any]:
        words = ocr["palabras_detectadas"]
        if not include_coordinates:
            words = [{k: v for k, v in word.items() if k != "coordenadas"} for word in words]
        return {
            "request_id": request_id,
            "filename": item.filename,
            "processing_status": "success",
            "processing_metadata": {
                "timestamp": _timestamp(),
                "profile_used": ocr["profile_used"],
                "processing_time": ocr["processing_time"],
                "method_used": ocr["method_used"],
                "coordinates_available": ocr["coordinates_available"],
                "confidence_average": ocr["confidence_average"],
                "language": language,
                "image_size": ocr.get("image_size"),
                "image_format": ocr.get("image_format"),
                "image_sha256": ocr.get("image_sha256"),
                "cache_hit": ocr.get("cache_hit", False),
                "text_length": len(ocr["original_text_ocr"]),
            },
            "metadata": item.metadata,
            "original_text_ocr": ocr["original_text_ocr"],
            "structured_text_ocr": ocr["structured_text_ocr"],
            "extracted_fields": extraction["extracted_fields"],
            "campos_detalle": extraction.get("campos_detalle", {}),
            "validacion": extraction.get("validacion", {}),
            "metadatos_extraccion": extraction.get("metadatos_extraccion", {}),
            "palabras_detectadas": words,
            "lineas": ocr.get("lineas", []),
        }


@process_wide
def shared_orchestrator() -> OrquestadorOCR:
    """The process's OrquestadorOCR; models load on first use and are shared by every thread."""
    return OrquestadorOCR()


def loaded_orchestrator() -> OrquestadorOCR | None:
    """The process's orchestrator if something already created it (never loads models)."""
    return shared_orchestrator.peek()
