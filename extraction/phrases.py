"""Phrase matching tolerant to OCR noise: labels and bank aliases found at a position of a token
list, with a bounded number of edits."""
from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from extraction.confusions import letter_shape
from extraction.normalizers import edit_distance


class PhraseHit(NamedTuple):
    payload: object
    length: int  # tokens of the text consumed
    chars: int  # characters of the phrase (longest phrase wins between competitors)
    edits: int  # total edit distance over the phrase's tokens


class PhraseIndex:
    """Finds known phrases (token tuples) at a position of a token list.

    A phrase token of `fuzzy_from` characters or more tolerates one edit (a missing, extra or
    misread character), two from 9 characters on; shorter tokens must match exactly, but for the
    glyphs OCR confuses inside words (confusions.letter_shape: "rlf" is "rif"). Candidates
    are found through an index of one-deletion variants, so a lookup costs a few dict probes, and
    results are cached per token.
    """

    def __init__(self, phrases: list[tuple[tuple[str, ...], object]], fuzzy_from: int = 5) -> None:
        self.fuzzy_from = fuzzy_from
        self._by_first: dict[str, list[tuple[tuple[str, ...], object]]] = {}
        self._variants: dict[str, set[str]] = {}
        self._by_shape: dict[str, set[str]] = {}
        for tokens, payload in phrases:
            if not tokens:
                continue
            self._by_first.setdefault(tokens[0], []).append((tokens, payload))
            first = tokens[0]
            self._by_shape.setdefault(letter_shape(first), set()).add(first)
            if len(first) >= fuzzy_from:
                for variant in _deletions(first) | {first}:
                    self._variants.setdefault(variant, set()).add(first)
        self._first_cache: dict[str, tuple[tuple[str, int], ...]] = {}

    def tolerance(self, phrase_token: str) -> int:
        if len(phrase_token) < self.fuzzy_from:
            return 0
        return 1 if len(phrase_token) < 9 else 2

    def _first_candidates(self, token: str) -> tuple[tuple[str, int], ...]:
        cached = self._first_cache.get(token)
        if cached is not None:
            return cached
        found: dict[str, int] = {}
        if token in self._by_first:
            found[token] = 0
        for first in self._by_shape.get(letter_shape(token), ()):
            found.setdefault(first, 0)
        if len(token) >= self.fuzzy_from - 1:
            for variant in _deletions(token) | {token}:
                for first in self._variants.get(variant, ()):
                    if first not in found:
                        distance = edit_distance(token, first, self.tolerance(first))
                        if distance <= self.tolerance(first):
                            found[first] = distance
        result = tuple(found.items())
        if len(self._first_cache) < 20000:
            self._first_cache[token] = result
        return result

    def match_at(self, tokens: list[str], start: int) -> list[PhraseHit]:
        """Every phrase that matches tokens[start:], longest (in characters) first."""
        if start >= len(tokens):
            return []
        hits: list[PhraseHit] = []
        for first, first_edits in self._first_candidates(tokens[start]):
            for phrase, payload in self._by_first[first]:
                if start + len(phrase) > len(tokens):
                    continue
                edits = first_edits
                for offset in range(1, len(phrase)):
                    expected, seen = phrase[offset], tokens[start + offset]
                    limit = self.tolerance(expected)
                    distance = 0 if expected == seen else _cached_distance(seen, expected, limit)
                    if distance > limit:
                        break
                    edits += distance
                else:
                    hits.append(PhraseHit(payload, len(phrase), sum(map(len, phrase)), edits))
        hits.sort(key=lambda h: (-h.chars, h.edits))
        return hits


@lru_cache(maxsize=65536)
def _cached_distance(a: str, b: str, limit: int) -> int:
    if limit:
        return edit_distance(a, b, limit)
    return 0 if a == b or letter_shape(a) == letter_shape(b) else 1


def _deletions(token: str) -> set[str]:
    return {token[:i] + token[i + 1:] for i in range(len(token))}
