"""Reconciliation accuracy and speed on generated statements.

    .venv/bin/python benchmarks/reconcile_bench.py [--seeds 3] [--receipts 200] [--scale 10000] [--repeat 5]

1. For every format and seed: a generated export and its receipts (tools/statement_generator.py),
   parsed and reconciled; prints the confusion table (expected state x obtained state) summed
   over all of them, and how many receipts were `conciliado` with the wrong movement.
2. The time to reconcile `--scale` receipts against `--scale` movements (median of `--repeat`
   runs), and the time to parse that statement.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reconciliation import ESTADOS, Receipt, parse_statement, reconcile  # noqa: E402
from reconciliation.spec import load_specs  # noqa: E402
from tools.statement_generator import generate_statement  # noqa: E402


def confusion(seeds: int, receipts: int) -> tuple[Counter, int, int]:
    table: Counter = Counter()
    wrong = total = 0
    for format_id in sorted(load_specs()):
        for seed in range(seeds):
            generated = generate_statement(format_id, seed=seed, receipts=receipts)
            statement = parse_statement(generated.data)
            report = reconcile([Receipt.from_fields(r["id"], r) for r in generated.receipts], [statement])
            for receipt_id, expected in generated.expected.items():
                result = report.results[receipt_id]
                table[(expected["estado"], result["estado"])] += 1
                total += 1
                if result["estado"] == "conciliado" and result["movimiento"]["linea"] != expected["linea"]:
                    wrong += 1
    return table, wrong, total


def print_confusion(table: Counter) -> None:
    width = max(len(s) for s in ESTADOS) + 2
    print("expected \\ obtained".ljust(22) + "".join(s.rjust(width) for s in ESTADOS))
    for expected in ESTADOS:
        print(expected.ljust(22) + "".join(str(table[(expected, got)]).rjust(width) for got in ESTADOS))


def speed(scale: int, repeat: int, format_id: str) -> None:
    generated = generate_statement(format_id, seed=0, receipts=scale)
    start = time.perf_counter()
    statement = parse_statement(generated.data, format_id)
    parse_seconds = time.perf_counter() - start
    statement = dataclasses.replace(statement, movements=statement.movements[:scale])
    receipts = [Receipt.from_fields(r["id"], r) for r in generated.receipts[:scale]]
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        report = reconcile(receipts, [statement])
        timings.append(time.perf_counter() - start)
    states = Counter(r["estado"] for r in report.results.values())
    print(f"{format_id}: parse {len(generated.data) / 1e6:.1f} MB, {len(generated.lines)} lines: {parse_seconds:.2f} s")
    print(f"reconcile {len(receipts)} receipts x {len(statement.movements)} movements: "
          f"median {statistics.median(timings):.3f} s over {repeat} runs (min {min(timings):.3f}, max {max(timings):.3f})")
    print("  states:", dict(sorted(states.items())))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--receipts", type=int, default=200)
    parser.add_argument("--scale", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--format", default="bancaribe_csv", help="format of the speed run")
    args = parser.parse_args(argv)
    table, wrong, total = confusion(args.seeds, args.receipts)
    print(f"{total} receipts: {len(load_specs())} formats x {args.seeds} seeds x {args.receipts} receipts")
    print_confusion(table)
    print(f"conciliado with the wrong movement: {wrong}")
    print()
    speed(args.scale, args.repeat, args.format)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
