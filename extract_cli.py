"""`python main.py extract`: OCR and field extraction of local files, printed as JSON lines.

Files are read a few at a time (one OCR call's worth) and each document is printed as soon as its
chunk finishes, so a long run shows results at once and never holds every file in memory. A
progress bar goes to stderr when it is a terminal, after a spinner while the models load (the bar
used to sit at 0% for the 10-15 s of loading); stdout stays pure JSON lines.
"""
from __future__ import annotations

import itertools
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from aplicador_ocr import PAGES_PER_CALL
from main_ocr_process import ImagenLote, OrquestadorOCR, error_document


def _print(document: dict[str, Any]) -> None:
    print(json.dumps(document, ensure_ascii=False), flush=True)


def _read_chunk(paths: list[Path], profile: str) -> tuple[list[ImagenLote], list[dict[str, Any] | None]]:
    """The readable files as batch items; for each path, None or the error document of an unreadable one."""
    items: list[ImagenLote] = []
    errors: list[dict[str, Any] | None] = []
    for path in paths:
        try:
            items.append(ImagenLote(str(path), path.read_bytes(), {}))
            errors.append(None)
        except OSError as exc:
            errors.append(error_document(str(path), {}, None, profile, "spa", "file_unreadable",
                                         f"{exc.strerror or type(exc).__name__}: {path}"))
    return items, errors


def load_models(orchestrator: OrquestadorOCR, profile: str, out=sys.stderr) -> float:
    """Load the profile's models, a spinner on a terminal meanwhile; a line when they are loaded.
    Returns the seconds it took."""
    started = time.perf_counter()
    done = threading.Event()

    def spin() -> None:
        for frame in itertools.cycle("|/-\\"):
            if done.wait(0.1):
                break
            out.write(f"\rcargando modelos ({profile}) {frame} {time.perf_counter() - started:4.1f} s")
            out.flush()

    spinner = threading.Thread(target=spin, daemon=True) if out.isatty() else None
    if spinner is not None:
        spinner.start()
    try:
        orchestrator.aplicador.get_predictor(profile)
    finally:
        done.set()
        if spinner is not None:
            spinner.join()
            out.write("\r\033[K")
    seconds = time.perf_counter() - started
    print(f"modelos cargados ({profile}) en {seconds:.1f} s", file=out, flush=True)
    return seconds


def run_extract(paths: list[Path], profile: str | None) -> int:
    orchestrator = OrquestadorOCR()
    try:
        profile = orchestrator.aplicador.resolve_profile(profile)
    except ValueError as exc:
        print(json.dumps({"success": False, "error": {"code": "unknown_profile", "message": str(exc)}},
                         ensure_ascii=False), file=sys.stderr)
        return 2
    load_models(orchestrator, profile)
    failed = False
    progress = tqdm(total=len(paths), unit="img", file=sys.stderr, disable=not sys.stderr.isatty())
    for start in range(0, len(paths), PAGES_PER_CALL):
        items, errors = _read_chunk(paths[start:start + PAGES_PER_CALL], profile)
        documents = iter(orchestrator.procesar_lote_imagenes(items, profile))
        for error in errors:
            document = error if error is not None else next(documents)
            failed |= document.get("processing_status") == "error"
            _print(document)
            progress.update(1)
    progress.close()
    return 1 if failed else 0
