"""Entry points.

    gunicorn main:app                      serve the API (gunicorn.conf.py also starts the worker)
    python main.py                         the same, on PORT (5000)
    python main.py worker                  run the OCR worker alone
    python main.py extract IMG [IMG...] [--profile P]
                                           OCR + extraction without the server; one JSON per line
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

import config
from app import create_app

BASE_DIR = Path(__file__).resolve().parent

# Cheap by design: no models and no worker here, so every gunicorn process can import it.
app = create_app()


def serve() -> int:
    os.chdir(BASE_DIR)
    argv = [sys.executable, "-m", "gunicorn", "-c", str(BASE_DIR / "gunicorn.conf.py"), "main:app"]
    os.execvp(argv[0], argv)
    return 1  # not reached


def run_worker() -> int:
    from worker import Runtime, Worker

    worker = Worker(Runtime.from_settings(config.load_settings()))
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: worker.stop())
    worker.run()
    return 0


def extract(paths: list[str], profile: str | None) -> int:
    from main_ocr_process import ImagenLote, OrquestadorOCR, error_document

    orchestrator = OrquestadorOCR()
    try:
        profile = orchestrator.aplicador.resolve_profile(profile)
    except ValueError as exc:
        print(json.dumps({"success": False, "error": {"code": "unknown_profile", "message": str(exc)}},
                         ensure_ascii=False), file=sys.stderr)
        return 2
    documents: dict[int, dict] = {}
    readable: list[tuple[int, ImagenLote]] = []
    for index, path in enumerate(paths):
        try:
            readable.append((index, ImagenLote(path, Path(path).read_bytes(), {})))
        except OSError as exc:
            documents[index] = error_document(path, {}, None, profile, "spa", "file_unreadable",
                                              f"{exc.strerror or type(exc).__name__}: {path}")
    processed = orchestrator.procesar_lote_imagenes([item for _, item in readable], profile)
    for (index, _), document in zip(readable, processed):
        documents[index] = document
    for index in range(len(paths)):
        print(json.dumps(documents[index], ensure_ascii=False), flush=True)
    return 1 if any(d.get("processing_status") == "error" for d in documents.values()) else 0


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="main.py", description="Sistema OCR Empresarial Asíncrono")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve the API with gunicorn (the default)")
    commands.add_parser("worker", help="run the OCR worker process alone")
    extract_cmd = commands.add_parser("extract", help="OCR and extract fields from image files")
    extract_cmd.add_argument("images", nargs="+")
    extract_cmd.add_argument("--profile", default=None, choices=sorted(config.OCR_CONFIG["profiles"]))
    args = parser.parse_args(argv)
    if args.command == "worker":
        return run_worker()
    if args.command == "extract":
        return extract(args.images, args.profile)
    return serve()


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
