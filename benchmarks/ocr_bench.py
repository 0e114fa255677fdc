"""OCR benchmark: speed, memory and reading accuracy of each profile.

    python benchmarks/ocr_bench.py [--profiles ultra_rapido balanced high_confidence]
                                   [--generated 30] [--real ../shared/receipts/real]
                                   [--configs OCR_INT8_DETECTION=false OCR_INT8_DETECTION=true] [--repeat 3]

Each profile runs in its own process, so its peak RSS is its own. Prints one table row per
profile: model load, first call, median and p90 seconds per image, images per second, peak RSS,
character error rate (CER) on generated receipts against their printed lines, and on real
receipts the share of labelled amount/reference/phone/cédula values present in the text.

--configs compares settings: each is a space-free list of NAME=VALUE pairs joined by commas (the
environment of that run, e.g. OCR_INT8_DETECTION=false,ORT_INTRA_OP_THREADS=1). With --repeat N
every (profile, config) runs N times, interleaved round by round, so a busy moment on a shared
machine falls on all of them alike; the table gives each row's medians over the rounds.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_REAL = ROOT.parent / "shared" / "receipts" / "real"
REAL_FIELDS = ("monto", "referencia", "telefono", "cedula")


def levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def character_error_rate(expected_lines: list[str], text: str) -> float:
    expected = " ".join(" ".join(expected_lines).split())
    got = " ".join(text.split())
    return levenshtein(expected, got) / max(len(expected), 1)


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def real_values_present(labels: dict, text: str) -> tuple[int, int, list[str]]:
    """How many labelled key values can be read in the OCR text (digits compared, separators free)."""
    flat = _digits(text)
    found, total, missing = 0, 0, []
    for field in REAL_FIELDS:
        value = labels.get(field)
        if not value:
            continue
        total += 1
        if _digits(value) and _digits(value) in flat:
            found += 1
        else:
            missing.append(f"{field}={value}")
    return found, total, missing


def collect_images(generated: int, real_dir: Path) -> list[dict]:
    items: list[dict] = []
    if generated:
        from tools.receipt_generator import generate_set

        out = Path(tempfile.mkdtemp(prefix="ocr_bench_"))
        generate_set(out, generated, start_seed=1000)
        truth = json.loads((out / "ground_truth.json").read_text(encoding="utf-8"))
        for name, entry in sorted(truth.items()):
            items.append({"path": str(out / name), "kind": "generated", "lines": entry["lines"]})
    labels_file = real_dir / "labels.json"
    if labels_file.is_file():
        labels = json.loads(labels_file.read_text(encoding="utf-8"))
        for name, entry in sorted(labels.items()):
            if entry.get("legible", True) and (real_dir / name).is_file():
                items.append({"path": str(real_dir / name), "kind": "real", "labels": entry})
    else:
        print(f"(no real receipts at {real_dir}: skipped)", file=sys.stderr)
    return items


def run_profile(profile: str, items: list[dict]) -> dict:
    """Runs inside the child process."""
    started = time.perf_counter()
    from aplicador_ocr import AplicadorOCR

    engine = AplicadorOCR()
    engine.preload(profile)
    load_seconds = time.perf_counter() - started - engine.load_times[profile]["warmup_seconds"]
    first_call = engine.load_times[profile]["warmup_seconds"]
    times, cers, found, total, misses = [], [], 0, 0, []
    batch_started = time.perf_counter()
    for item in items:
        data = Path(item["path"]).read_bytes()
        engine.cache.clear()
        call_started = time.perf_counter()
        result = engine.procesar_imagen(data, profile)
        times.append(time.perf_counter() - call_started)
        if item["kind"] == "generated":
            cers.append(character_error_rate(item["lines"], result["structured_text_ocr"]))
        else:
            ok, count, missing = real_values_present(item["labels"], result["structured_text_ocr"])
            found, total = found + ok, total + count
            misses.extend(f"{Path(item['path']).name[:40]}: {m}" for m in missing)
    wall = time.perf_counter() - batch_started
    times.sort()
    return {
        "profile": profile,
        "images": len(items),
        "load_s": round(load_seconds, 2),
        "first_call_s": round(first_call, 2),
        "median_s": round(statistics.median(times), 3) if times else None,
        "p90_s": round(times[min(len(times) - 1, int(0.9 * len(times)))], 3) if times else None,
        "img_per_s": round(len(times) / wall, 2) if wall else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cer_generated": round(statistics.mean(cers), 4) if cers else None,
        "real_values_found": f"{found}/{total}" if total else None,
        "real_missing": misses,
    }


def _median_row(rows: list[dict], config: str) -> dict:
    """One row per (profile, config): medians of the numbers over the rounds, the first round's texts."""
    merged = dict(rows[0], config=config or "defaults", runs=len(rows))
    for key, value in rows[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            merged[key] = round(statistics.median(r[key] for r in rows), 4)
    merged["real_values_found"] = "/".join(sorted({str(r["real_values_found"]) for r in rows}))
    return merged


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", nargs="+", default=["ultra_rapido", "balanced", "high_confidence"])
    parser.add_argument("--generated", type=int, default=30, help="generated receipts to include (0: none)")
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL, help="folder of real receipts with labels.json")
    parser.add_argument("--configs", nargs="+", default=[""], help="settings to compare: NAME=VALUE[,NAME=VALUE]")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; medians are reported")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        items = json.loads(Path(args.child).read_text(encoding="utf-8"))
        print(json.dumps(run_profile(args.profiles[0], items)))
        return 0

    items = collect_images(args.generated, args.real)
    if not items:
        print("no images to benchmark", file=sys.stderr)
        return 1
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as handle:
        json.dump(items, handle)
    runs: dict[tuple[str, str], list[dict]] = {}
    for round_index in range(args.repeat):
        pairs = [(profile, config) for profile in args.profiles for config in args.configs]
        for profile, config in pairs if round_index % 2 == 0 else reversed(pairs):
            settings = dict(item.split("=", 1) for item in config.split(",") if item)
            output = subprocess.run(
                [sys.executable, __file__, "--child", handle.name, "--profiles", profile],
                check=True, capture_output=True, text=True, cwd=ROOT,
                env={**os.environ, **settings, "PYTHONPATH": str(ROOT)},
            ).stdout
            runs.setdefault((profile, config), []).append(json.loads(output.strip().splitlines()[-1]))
    rows = [_median_row(found, config) for (_, config), found in runs.items()]
    os.unlink(handle.name)

    generated = sum(1 for i in items if i["kind"] == "generated")
    print(f"\nOCR benchmark: {len(items)} images ({generated} generated, {len(items) - generated} real), "
          f"{os.cpu_count()} cores\n")
    columns = ["profile", "config", "runs", "images", "load_s", "first_call_s", "median_s", "p90_s", "img_per_s", "peak_rss_mb",
               "cer_generated", "real_values_found"]
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    print(" | ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("-|-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(str(row[c]).ljust(w) for c, w in zip(columns, widths)))
    for row in rows:
        for miss in row["real_missing"]:
            print(f"  {row['profile']}: not in text: {miss}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
