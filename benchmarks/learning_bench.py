"""What corrections teach (issue 20 item 7): a leave-one-layout-out table on generated receipts.

    python benchmarks/learning_bench.py [--k 3] [--next 20] [--others 20] [--variant clean|whatsapp|lowres|mixed]

For each layout the shipped rules have never seen (tools/novel_layouts.py: an existing layout with
its labels renamed), held out in turn: a clerk corrects, on the first k = 1, 2, 3 receipts of that
layout, every field the service read wrong or missed (to the generator's ground truth, read as a
PATCH /api/uploads/<id>/fields reads it); each correction is turned into a proposed rule
(extraction.learning.learn_from_correction, what service/learned_rules.py runs on a correction),
and the tenant's admin accepts every proposal. Then, with the tenant's accepted rules applied as the
worker applies them (extraction.learning.apply_learned):

- the share of the next N receipts of that layout read right (every one of the 16 fields equal to
  the ground truth), and the share of their fields read right;
- right values that became wrong: on those N receipts, on the other layouts (the other novel
  layouts and N receipts of the shipped layouts, under the same tenant's rules), and on the same N
  receipts read for another tenant (which has no rules: its extraction must be the shipped one).

Every image goes through the real OCR (the warm shared engine, the service's default profile), once.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import config  # noqa: E402
from aplicador_ocr import get_aplicador  # noqa: E402
from benchmarks.accuracy import same_value  # noqa: E402
from extraction.corrections import read_correction  # noqa: E402
from extraction.extractor import extract_fields  # noqa: E402
from extraction.learning import LearnedRule, apply_learned, learn_from_correction, merged, same_rule  # noqa: E402
from tools.novel_layouts import NOVEL_LAYOUTS, generate_novel  # noqa: E402
from tools.receipt_generator import generate_receipt  # noqa: E402

FIELDS = list(config.FIELDS)
EVAL_FROM = 100  # evaluation seeds are EVAL_FROM.. (never a learning seed)
SHIPPED_FROM = 5000


class Page:
    """One generated receipt read once by the OCR: its shipped document and its ground truth."""

    def __init__(self, name: str, image: bytes, truth: dict[str, Any], engine: Any, profile: str) -> None:
        self.name, self.truth = name, truth
        ocr = engine.procesar_imagen(image, profile)
        self.document = {**extract_fields(ocr), "palabras_detectadas": ocr["palabras_detectadas"],
                         "lineas": ocr.get("lineas", []), "processing_metadata": {"image_size": ocr.get("image_size")}}

    def read(self, rules: list[LearnedRule]) -> dict[str, Any]:
        """The fields as the worker stores them for a tenant with these accepted rules."""
        applied = apply_learned(self.document, rules)
        return (applied or self.document)["extracted_fields"]

    def right(self, fields: dict[str, Any]) -> list[bool]:
        return [same_value(name, self.truth.get(name), fields.get(name)) for name in FIELDS]


class Tenant:
    """A tenant's learned rules, kept the way service/learned_rules.py keeps them."""

    def __init__(self) -> None:
        self.rules: list[LearnedRule] = []

    def correct(self, page: Page) -> int:
        """A clerk corrects every wrong or missing field of the page; the admin accepts each proposal."""
        stored = page.read(self.rules)
        document = {**page.document, "extracted_fields": stored}
        taught = 0
        for name in FIELDS:
            if same_value(name, page.truth.get(name), stored.get(name)) or page.truth.get(name) is None:
                continue
            value, refused = read_correction(name, page.truth[name])
            lesson = None if refused else learn_from_correction(document, name, value, learned=self.rules)
            if lesson is None:
                continue
            known = next((rule for rule in self.rules if same_rule(rule, lesson)), None)
            if known is None:
                self.rules.append(lesson.as_rule(len(self.rules) + 1))
            else:
                self.rules[self.rules.index(known)] = merged(known, lesson)
            taught += 1
        return taught


def _became_wrong(pages: list[Page], rules: list[LearnedRule]) -> tuple[int, int]:
    """(right shipped values that became wrong, right shipped values) over the pages."""
    broken = total = 0
    for page in pages:
        before = page.right(page.document["extracted_fields"])
        after = page.right(page.read(rules))
        total += sum(before)
        broken += sum(1 for b, a in zip(before, after) if b and not a)
    return broken, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--next", type=int, default=20, help="receipts of the layout measured after learning")
    parser.add_argument("--others", type=int, default=20, help="receipts of the shipped layouts checked")
    parser.add_argument("--variant", default="mixed", help="clean, whatsapp, lowres, or mixed (by seed)")
    parser.add_argument("--k", type=int, default=3, help="corrected receipts, learned one by one (k = 1..K)")
    parser.add_argument("--profile", default=config.OCR_CONFIG["default_profile"])
    args = parser.parse_args(argv)
    variant = None if args.variant == "mixed" else args.variant
    if not 1 <= args.k < EVAL_FROM:
        parser.error(f"--k must be 1 to {EVAL_FROM - 1} (learning seeds never overlap the measured ones)")

    engine = get_aplicador()
    engine.preload(args.profile)
    started = time.perf_counter()

    def novel(layout: str, seed: int) -> Page:
        receipt = generate_novel(seed, layout, variant)
        return Page(receipt.filename, receipt.image_bytes, receipt.fields, engine, args.profile)

    learn = {layout: [novel(layout, s) for s in range(1, args.k + 1)] for layout in NOVEL_LAYOUTS}
    evaluate = {layout: [novel(layout, EVAL_FROM + i) for i in range(args.next)] for layout in NOVEL_LAYOUTS}
    shipped = []
    for i in range(args.others):
        receipt = generate_receipt(SHIPPED_FROM + i, variant=variant)
        shipped.append(Page(receipt.filename, receipt.image_bytes, receipt.fields, engine, args.profile))
    ocr_seconds = time.perf_counter() - started

    print(f"profile {args.profile}, variant {args.variant}; {len(NOVEL_LAYOUTS)} novel layouts, next {args.next} "
          f"receipts each, {args.others} receipts of the shipped layouts; OCR {ocr_seconds:.0f} s")
    header = (f"{'layout':<16} {'k':>2} {'rules':>5} {'receipts right':>15} {'fields right':>13} "
              f"{'right->wrong: layout':>21} {'other layouts':>14} {'other tenant':>13}")
    print(header)
    print("-" * len(header))
    totals = {"elsewhere": 0, "tenant": 0, "own": 0}
    for layout in NOVEL_LAYOUTS:
        tenant = Tenant()
        elsewhere = [p for other, pages in evaluate.items() if other != layout for p in pages] + shipped
        for k in range(0, args.k + 1):
            if k:
                tenant.correct(learn[layout][k - 1])
            rules = list(tenant.rules)
            rights = [page.right(page.read(rules)) for page in evaluate[layout]]
            receipts_right = sum(all(r) for r in rights)
            fields_right = sum(sum(r) for r in rights)
            own_broken, _ = _became_wrong(evaluate[layout], rules)
            other_broken, other_total = _became_wrong(elsewhere, rules)
            tenant_broken, _ = _became_wrong(evaluate[layout], [])  # another tenant: no rules of this one
            totals["own"] += own_broken
            totals["elsewhere"] += other_broken
            totals["tenant"] += tenant_broken
            print(f"{layout:<16} {k:>2} {len(rules):>5} "
                  f"{receipts_right:>6}/{len(rights)} ({100 * receipts_right / len(rights):3.0f}%) "
                  f"{100 * fields_right / (len(rights) * len(FIELDS)):12.1f}% "
                  f"{own_broken:>21} {f'{other_broken}/{other_total}':>14} {tenant_broken:>13}")
    print(f"right values that became wrong: {totals['own']} on the learned layouts, {totals['elsewhere']} on other "
          f"layouts, {totals['tenant']} for another tenant")
    return 0


if __name__ == "__main__":
    sys.exit(main())
