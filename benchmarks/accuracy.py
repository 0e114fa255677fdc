"""Accuracy of OCR + field extraction on labelled receipt folders.

    python benchmarks/accuracy.py ../shared/receipts/real/ [DIR ...] [--profile P] [--json]
    python benchmarks/accuracy.py --generate 200 [--seed 1000]
    python benchmarks/accuracy.py ../shared/receipts/real/ --generate 60 --variants all
    python benchmarks/accuracy.py ../shared/receipts/real/ --pages-per-call 4   # as the worker reads

With --variants, every folder and the generated set are also read as they arrive in practice
(tools/receipt_variants.py: photo of the screen, turned, thumbnail, large screen, viewer,
screenshot of a screenshot): the real receipts are put through each variant by the generator's
code, and N receipts are generated per variant. A summary table then gives, per variant, the share
of correct values and the count of wrong ones for the key fields.

A folder is labelled either by `labels.json` (real receipts, hand labels) or by
`ground_truth.json` (written by tools.receipt_generator.generate_set). For every field the report
gives: labelled, correct, wrong (a different value), missed (None), spurious (a value where the
label says None), how many wrong values were flagged for review (campos_detalle requiere_revision,
e.g. lectura_dudosa) and how many right ones were, precision = correct / (correct + wrong + spurious), recall = correct / labelled;
then extraction time per image (OCR excluded), how many pages were read a second time, closer
(extraction/second_reading.py: their time counts as OCR time), and the list of failures.

Label conventions of the real set are mapped onto the extractor's output: `monto_normalized` is
the amount; `cedula`, `fecha` and `hora` are "as printed" and are normalized first; banks "as
printed or inferred" are compared by catalog code ("0105 - BANCO MERCANTIL" = "Banco Mercantil");
`legible: false` images are skipped. Free text (concepto, beneficiario, canal_pago) is compared
without case, accents and spaces; accounts by their digits and where the mask is ("0102****4821"
= "0102••••4821"). Exit code is 0 whatever the accuracy.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import config  # noqa: E402
from extraction.banks import get_catalog  # noqa: E402
from extraction.extractor import extract_fields  # noqa: E402
from extraction.normalizers import compact, normalize_cedula, normalize_date, normalize_time  # noqa: E402
from extraction.rules import get_registry  # noqa: E402
from main_ocr_process import OrquestadorOCR  # noqa: E402

FIELDS: list[str] = list(config.EXTRACTION_CONFIG["fields"])
TEXT_FIELDS = {"concepto", "beneficiario", "canal_pago"}
BANK_FIELDS = {"banco_origen", "banco_destino"}
ACCOUNT_FIELDS = {"cuenta_origen", "cuenta_destino"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
# The fields a payment check relies on: the summary table shows these.
KEY_FIELDS = ("monto", "referencia", "telefono", "cedula", "fecha", "banco_origen", "banco_destino")


# ------------------------------------------------------------------------------------------------
# Labels
# ------------------------------------------------------------------------------------------------
def _real_expectations(label: dict[str, Any]) -> dict[str, Any]:
    """labels.json conventions -> the extractor's normalized values (only labelled keys)."""
    out: dict[str, Any] = {}
    if "monto_normalized" in label:
        out["monto"] = label["monto_normalized"]
    for key in ("referencia", "telefono", "banco_origen", "banco_destino", "beneficiario", "concepto"):
        if key in label:
            out[key] = label[key]
    if "cedula" in label:
        out["cedula"] = normalize_cedula(label["cedula"]) if label["cedula"] else None
    if "fecha" in label:
        out["fecha"] = normalize_date(label["fecha"]) if label["fecha"] else None
    if "hora" in label:
        out["hora_operacion"] = normalize_time(label["hora"]) if label["hora"] else None
    return out


def load_folder(folder: Path) -> list[tuple[Path, dict[str, Any], str]]:
    """(image path, expected fields, layout) for every labelled image of `folder`."""
    items = []
    if (folder / "labels.json").is_file():
        labels = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
        for name, label in sorted(labels.items()):
            if not isinstance(label, dict) or label.get("legible") is False:
                continue
            if (folder / name).is_file():
                items.append((folder / name, _real_expectations(label), "real"))
    elif (folder / "ground_truth.json").is_file():
        truth = json.loads((folder / "ground_truth.json").read_text(encoding="utf-8"))
        for name, entry in sorted(truth.items()):
            if (folder / name).is_file():
                items.append((folder / name, dict(entry.get("fields", {})), entry.get("layout", "?")))
    return items


def folder_through_variant(items: list[tuple[Path, dict[str, Any], str]], variant: str, out_dir: Path
                           ) -> list[tuple[Path, dict[str, Any], str]]:
    """The same labelled images put through one arrival variant, written into out_dir."""
    import random

    from PIL import Image, ImageOps

    from tools.receipt_variants import apply_arrival

    out_dir.mkdir(parents=True, exist_ok=True)
    moved = []
    for path, expected, layout in items:
        with Image.open(path) as image:
            upright = ImageOps.exif_transpose(image).convert("RGB")
        data, fmt, _ = apply_arrival(upright, variant, random.Random(f"{path.name}:{variant}"))
        target = out_dir / f"{path.stem}.{variant}.{'png' if fmt == 'PNG' else 'jpg'}"
        target.write_bytes(data)
        moved.append((target, expected, layout))
    return moved


def generated_items(out_dir: Path, count: int, start_seed: int, variant: str | None
                    ) -> list[tuple[Path, dict[str, Any], str]]:
    from tools.receipt_generator import generate_receipt, generate_set

    if variant is None:
        generate_set(out_dir, count, start_seed)
        return load_folder(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    items = []
    for seed in range(start_seed, start_seed + count):
        receipt = generate_receipt(seed, variant=variant)
        path = out_dir / receipt.filename
        path.write_bytes(receipt.image_bytes)
        items.append((path, dict(receipt.fields), receipt.layout))
    return items


# ------------------------------------------------------------------------------------------------
# Comparison
# ------------------------------------------------------------------------------------------------
def _bank_code(value: Any) -> str | None:
    if not value:
        return None
    catalog = get_catalog()
    for bank in catalog.banks:
        if bank.name == value:
            return bank.code
    bank, _ = catalog.resolve(str(value))
    return bank.code if bank else f"?{value}"


def _account_shape(value: Any) -> str:
    text = re.sub(r"[\s\-–]", "", str(value))
    return re.sub(r"[^0-9]+", "*", text)


def same_value(field: str, expected: Any, got: Any) -> bool:
    if expected is None or got is None:
        return expected is None and got is None
    if field == "monto":
        try:
            return Decimal(str(expected)) == Decimal(str(got))
        except InvalidOperation:
            return False
    if field in BANK_FIELDS:
        return _bank_code(expected) == _bank_code(got)
    if field in ACCOUNT_FIELDS:
        return _account_shape(expected) == _account_shape(got)
    if field in TEXT_FIELDS:
        return compact(str(expected)) == compact(str(got))
    return str(expected) == str(got)


# ------------------------------------------------------------------------------------------------
# Evaluation
# ------------------------------------------------------------------------------------------------
def read_all(items: list[tuple[Path, dict[str, Any], str]], profile: str, engine: Any, pages_per_call: int
             ) -> list[tuple[dict[str, Any], float]]:
    """(OCR result, seconds) per item. With pages_per_call > 1 the images are read in calls of that
    many pages, as the worker reads a batch; the seconds are then the call's share per page."""
    out: list[tuple[dict[str, Any], float]] = []
    for start in range(0, len(items), pages_per_call):
        chunk = items[start:start + pages_per_call]
        started = time.perf_counter()
        if pages_per_call == 1:
            results = [engine.procesar_imagen(chunk[0][0].read_bytes(), profile)]
        else:
            results = engine.procesar_lote([path.read_bytes() for path, _, _ in chunk], profile)
        share = (time.perf_counter() - started) / len(chunk)
        for result in results:
            if isinstance(result, Exception):
                raise result
            out.append((result, share))
    return out


def evaluate(items: list[tuple[Path, dict[str, Any], str]], profile: str, engine: Any,
             pages_per_call: int = 1) -> dict[str, Any]:
    rules = get_registry().current
    stats = {f: {"labelled": 0, "correct": 0, "wrong": 0, "missed": 0, "spurious": 0, "flagged_wrong": 0,
                 "flagged_correct": 0} for f in FIELDS}
    failures: list[dict[str, Any]] = []
    extract_ms: list[float] = []
    extract_cpu_ms: list[float] = []  # CPU time of this thread: unaffected by other processes
    ocr_s: list[float] = []
    reads = read_all(items, profile, engine, pages_per_call)
    firsts = []
    for ocr, seconds in reads:
        ocr_s.append(seconds)
        started, cpu_started = time.perf_counter(), time.thread_time()
        firsts.append(extract_fields(ocr, rules))
        extract_ms.append((time.perf_counter() - started) * 1000)
        extract_cpu_ms.append((time.thread_time() - cpu_started) * 1000)
    # As the service reads them: pages whose first reading left a key value unread or unsure are
    # read again closer (extraction/second_reading.py); that reading's time counts as OCR time.
    results = OrquestadorOCR(engine).extraer_campos([path.read_bytes() for path, _, _ in items],
                                                    [ocr for ocr, _ in reads], profile, first=firsts)
    second = {"pages": 0, "fields_asked": 0, "fields_taken": 0}
    for index, result in enumerate(results):
        again = result.get("metadatos_extraccion", {}).get("segunda_lectura")
        if again:
            second["pages"] += 1
            second["fields_asked"] += len(again["pedidos"])
            second["fields_taken"] += len(again["tomados"])
            ocr_s[index] += again.get("tiempo_s", 0.0)
    for (path, expected, layout), result in zip(items, results):
        got_fields = result["extracted_fields"]
        for field in FIELDS:
            if field not in expected:
                continue
            want, got = expected[field], got_fields.get(field)
            row = stats[field]
            if want is not None:
                row["labelled"] += 1
            detail = result["campos_detalle"].get(field, {})
            # A value sent to a person (lectura_dudosa...) is not taken silently.
            flagged = got is not None and bool(detail.get("requiere_revision"))
            if same_value(field, want, got):
                if want is not None:
                    row["correct"] += 1
                row["flagged_correct"] += flagged
                continue
            kind = "missed" if got is None else ("spurious" if want is None else "wrong")
            row[kind] += 1
            row["flagged_wrong"] += flagged
            failures.append({"file": path.name, "layout": layout, "field": field, "kind": kind,
                             "expected": want, "got": got,
                             "rule_or_reason": detail.get("regla") if got is not None else detail.get("motivo"),
                             "flagged": flagged})
    for row in stats.values():
        returned = row["correct"] + row["wrong"] + row["spurious"]
        row["precision"] = round(row["correct"] / returned, 4) if returned else None
        row["recall"] = round(row["correct"] / row["labelled"], 4) if row["labelled"] else None
    timing = {
        "images": len(items),
        "extraction_ms_mean": round(statistics.fmean(extract_ms), 3) if extract_ms else None,
        "extraction_ms_p95": round(_percentile(extract_ms, 95), 3) if extract_ms else None,
        "extraction_ms_max": round(max(extract_ms), 3) if extract_ms else None,
        "extraction_cpu_ms_mean": round(statistics.fmean(extract_cpu_ms), 3) if extract_cpu_ms else None,
        "extraction_cpu_ms_p95": round(_percentile(extract_cpu_ms, 95), 3) if extract_cpu_ms else None,
        "extraction_cpu_ms_max": round(max(extract_cpu_ms), 3) if extract_cpu_ms else None,
        "ocr_s_mean": round(statistics.fmean(ocr_s), 3) if ocr_s else None,
    }
    return {"fields": stats, "timing": timing, "second_reading": second, "failures": failures}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def print_report(name: str, report: dict[str, Any], out=sys.stdout, show_failures: bool = True) -> None:
    print(f"\n== {name} ({report['timing']['images']} images) ==", file=out)
    header = f"{'field':22} {'labelled':>8} {'correct':>8} {'wrong':>6} {'missed':>7} {'spurious':>8} {'precision':>9} {'recall':>7}"
    print(header, file=out)
    print("-" * len(header), file=out)
    for field, row in report["fields"].items():
        precision = "-" if row["precision"] is None else f"{row['precision']:.3f}"
        recall = "-" if row["recall"] is None else f"{row['recall']:.3f}"
        print(f"{field:22} {row['labelled']:8d} {row['correct']:8d} {row['wrong']:6d} {row['missed']:7d} "
              f"{row['spurious']:8d} {precision:>9} {recall:>7}", file=out)
    t = report["timing"]
    if t["images"]:
        print(f"extraction per image (OCR excluded): wall mean {t['extraction_ms_mean']:.2f} ms, "
              f"p95 {t['extraction_ms_p95']:.2f} ms, max {t['extraction_ms_max']:.2f} ms; "
              f"CPU mean {t['extraction_cpu_ms_mean']:.2f} ms, p95 {t['extraction_cpu_ms_p95']:.2f} ms, "
              f"max {t['extraction_cpu_ms_max']:.2f} ms "
              f"(OCR mean {t['ocr_s_mean']:.3f} s)", file=out)
    wrong = sum(r["wrong"] + r["spurious"] for r in report["fields"].values())
    flagged = sum(r["flagged_wrong"] for r in report["fields"].values())
    false_alarms = sum(r["flagged_correct"] for r in report["fields"].values())
    print(f"wrong values flagged for review: {flagged} of {wrong}; right values flagged: {false_alarms}", file=out)
    again = report["second_reading"]
    print(f"second, closer readings: {again['pages']} of {t['images']} pages, {again['fields_taken']} of "
          f"{again['fields_asked']} values asked for taken from them", file=out)
    if report["failures"] and not show_failures:
        print(f"failures: {len(report['failures'])} (--failures lists them)", file=out)
    elif report["failures"]:
        print(f"failures ({len(report['failures'])}):", file=out)
        for f in report["failures"]:
            print(f"  {f['file']} [{f['layout']}] {f['field']} {f['kind']}: expected {f['expected']!r} got {f['got']!r}"
                  f" ({f['rule_or_reason']}){' [flagged]' if f.get('flagged') else ''}", file=out)
    else:
        print("failures: none", file=out)


def print_summary(reports: dict[str, Any], out=sys.stdout) -> None:
    """One row per report: correct share / wrong count for each key field, then all fields."""
    print("\n== summary: correct % / wrong values (flagged: wrong values sent for review / wrong values) ==", file=out)
    header = f"{'set':44}" + "".join(f"{f[:12]:>13}" for f in KEY_FIELDS) + f"{'all fields':>13}{'flagged':>9}"
    print(header, file=out)
    for name, report in reports.items():
        cells = []
        for field in (*KEY_FIELDS, None):
            rows = [report["fields"][field]] if field else list(report["fields"].values())
            labelled = sum(r["labelled"] for r in rows)
            correct = sum(r["correct"] for r in rows)
            wrong = sum(r["wrong"] + r["spurious"] for r in rows)
            share = f"{100 * correct / labelled:.1f}" if labelled else "-"
            cells.append(f"{share + '/' + str(wrong):>13}")
        rows = list(report["fields"].values())
        wrong = sum(r["wrong"] + r["spurious"] for r in rows)
        cells.append(f"{str(sum(r['flagged_wrong'] for r in rows)) + '/' + str(wrong):>9}")
        print(f"{name[-44:]:44}" + "".join(cells), file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="*", help="folders with labels.json or ground_truth.json")
    parser.add_argument("--profile", default=config.OCR_CONFIG["default_profile"])
    parser.add_argument("--json", action="store_true", help="print the reports as JSON")
    parser.add_argument("--generate", type=int, default=0, metavar="N",
                        help="also generate N receipts with tools.receipt_generator and evaluate them")
    parser.add_argument("--seed", type=int, default=1000, help="first seed for --generate")
    parser.add_argument("--variants", default="",
                        help="comma-separated arrival variants (tools/receipt_variants.py), or 'all'")
    parser.add_argument("--pages-per-call", type=int, default=1, metavar="N",
                        help="read the images N at a time, as the worker reads a batch (default: one by one)")
    parser.add_argument("--failures", action="store_true", help="list every failure under each table")
    args = parser.parse_args(argv)
    if not args.dirs and not args.generate:
        parser.error("give at least one folder or --generate N")
    from tools.receipt_variants import ARRIVAL_VARIANTS

    variants = list(ARRIVAL_VARIANTS) if args.variants == "all" else [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(ARRIVAL_VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; expected some of {ARRIVAL_VARIANTS}")

    from aplicador_ocr import AplicadorOCR

    engine = AplicadorOCR()
    engine.preload(args.profile)
    reports: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="receipts_") as tmp:
        for number, folder in enumerate(args.dirs):
            path = Path(folder)
            items = load_folder(path) if path.is_dir() else []
            if not items:
                print(f"skipping {folder}: no labels.json/ground_truth.json with images there", file=sys.stderr)
                continue
            reports[str(path)] = evaluate(items, args.profile, engine, args.pages_per_call)
            for variant in variants:
                moved = folder_through_variant(items, variant, Path(tmp) / f"{number}-{variant}")
                reports[f"{path.name} [{variant}]"] = evaluate(moved, args.profile, engine, args.pages_per_call)
        if args.generate:
            name = f"generated(n={args.generate}, seed={args.seed})"
            for variant in [None, *variants]:
                items = generated_items(Path(tmp) / f"generated-{variant or 'default'}", args.generate, args.seed, variant)
                reports[name + (f" [{variant}]" if variant else "")] = evaluate(items, args.profile, engine, args.pages_per_call)
    if args.json:
        print(json.dumps({"profile": args.profile, "reports": reports}, ensure_ascii=False, indent=1))
    else:
        print(f"profile: {args.profile}")
        for name, report in reports.items():
            print_report(name, report, show_failures=args.failures or not variants)
        print_summary(reports)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
