"""Field-for-field comparison of two `benchmarks/accuracy.py --json` reports (e.g. two detection runtimes).

    OCR_DETECTION_RUNTIME=onnxruntime .venv/bin/python benchmarks/accuracy.py DIRS --generate 60 --variants all --json > a.json
    OCR_DETECTION_RUNTIME=openvino    .venv/bin/python benchmarks/accuracy.py DIRS --generate 60 --variants all --json > b.json
    .venv/bin/python benchmarks/compare_accuracy.py a.json b.json

Per set: the counts of every field (labelled, correct, wrong, missed, spurious) and every failure
(file, field, kind, expected, value read). A correct value equals its label, so two reports with the
same failures and counts read the same value for every labelled field of every image. Exit code 0
when identical, 1 otherwise.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

COUNTS = ("labelled", "correct", "wrong", "missed", "spurious")


def _failures(report: dict) -> set[tuple]:
    return {(f["file"], f["layout"], f["field"], f["kind"], json.dumps(f["expected"]), json.dumps(f["got"]))
            for f in report["failures"]}


def compare(first: dict, second: dict) -> list[str]:
    """Differences between two accuracy.py JSON documents, one line each (empty: identical)."""
    differences = []
    sets = list(dict.fromkeys([*first["reports"], *second["reports"]]))
    for name in sets:
        a, b = first["reports"].get(name), second["reports"].get(name)
        if a is None or b is None:
            differences.append(f"{name}: only in the {'second' if a is None else 'first'} report")
            continue
        if a["timing"]["images"] != b["timing"]["images"]:
            differences.append(f"{name}: {a['timing']['images']} vs {b['timing']['images']} images")
        for field, row in a["fields"].items():
            other = b["fields"][field]
            changed = {k: (row[k], other[k]) for k in COUNTS if row[k] != other[k]}
            if changed:
                differences.append(f"{name}: {field} {changed}")
        for failure in sorted(_failures(a) ^ _failures(b)):
            side = "first" if failure in _failures(a) else "second"
            differences.append(f"{name}: only in the {side}: {failure}")
    return differences


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    first, second = (json.loads(Path(p).read_text(encoding="utf-8")) for p in args)
    differences = compare(first, second)
    images = sum(r["timing"]["images"] for r in first["reports"].values())
    for line in differences:
        print(line)
    print(f"{len(first['reports'])} sets, {images} images: "
          + ("identical, field for field" if not differences else f"{len(differences)} difference(s)"))
    return 0 if not differences else 1


if __name__ == "__main__":
    raise SystemExit(main())
