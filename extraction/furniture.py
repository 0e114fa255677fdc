"""The page's furniture, as the rules list it: boilerplate sentences and button captions are
never a value (and end a value's block), and some printed values say there is none."""
from __future__ import annotations

from extraction.normalizers import compact, edit_distance, tokenize
from extraction.rules import RuleSet


def _same_token(a: str, b: str) -> bool:
    return a == b or (min(len(a), len(b)) >= 5 and edit_distance(a, b, 1) <= 1)


def is_furniture(rules: RuleSet, text: str) -> bool:
    """Whether a segment is one of the rules' boilerplate phrases: a one-word caption exactly
    ("Aceptar"); a longer phrase at its start ("Estimado cliente, su transacción ..."), or cut
    short by the screen's edge or a panel over it, two words at least ("¿Agregar Pago")."""
    norms = [t.norm for t in tokenize(text[:200])]
    if not norms:
        return False
    for phrase in rules.boilerplate:
        if len(phrase) == 1:
            if len(norms) == 1 and _same_token(norms[0], phrase[0]):
                return True
            continue
        size = min(len(phrase), len(norms))
        if size < 2:
            continue
        if all(_same_token(a, b) for a, b in zip(norms[:size], phrase[:size])):
            return True
    return False


def is_none_value(rules: RuleSet, text: str | None) -> bool:
    """A printed value that says there is none ("No indicado")."""
    return bool(text) and compact(text) in rules.none_values  # type: ignore[arg-type]
