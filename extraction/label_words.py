"""Label words: the tokens labels are matched with, and label words small text ran together.

OCR's digits-for-letters inside words are undone ("0peración", "Referenc1a"), aliases applied
("n°" -> "nro"), stopwords dropped, and a token that is several of the labels' own words run
together ("BANCORECEPTOR", "NÚMEROCELULARDEDESTINO": a thumbnail loses the spaces) is cut back into
them. A word that is not wholly made of label words ("MONTESINOS") is never cut.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from extraction.layout import Line, Segment, Word
from extraction.normalizers import Token, fold, tokenize

if TYPE_CHECKING:
    from extraction.banks import BankCatalog
    from extraction.rules import RuleSet


def label_tokens(text: str, aliases: Mapping[str, str], stopwords: frozenset[str], words: frozenset[str]) -> list[Token]:
    out = []
    for glued in tokenize(_LOOKALIKE_RUN.sub(_letters_for_digits, text)):
        for token in _unglued(glued, aliases, stopwords, words):
            norm = aliases.get(token.norm, token.norm)
            if norm in stopwords:
                continue
            out.append(Token(norm, token.start, token.end))
    return out


def made_of_label_words(text: str, words: frozenset[str]) -> bool:
    folded = fold(text)
    return folded in words or glued_words(folded, words) is not None


def _unglued(token: Token, aliases: Mapping[str, str], stopwords: frozenset[str], words: frozenset[str]) -> list[Token]:
    """`token` cut into the label words it is made of, or as it is. Each piece gets the span of its
    characters (a stopword's going to the word before it: the label "CELULARDE" ends where the
    word does) when folding kept the length, else the whole token's."""
    pieces = glued_words(token.norm, words) if len(token.norm) >= 7 and token.norm.isalpha() else None
    if not pieces:
        return [token]
    if token.end - token.start != len(token.norm):
        return [Token(piece, token.start, token.end) for piece in pieces]
    out: list[Token] = []
    cursor = token.start
    for piece in pieces:
        if out and aliases.get(piece, piece) in stopwords:
            out[-1] = out[-1]._replace(end=cursor + len(piece))
        else:
            out.append(Token(piece, cursor, cursor + len(piece)))
        cursor += len(piece)
    return out


def glued_words(text: str, words: frozenset[str]) -> list[str] | None:
    """The fewest words of `words` (two letters or more each, two words or more) that `text` is
    made of, or None: a word of its own is never cut."""
    if text in words:
        return None
    best: list[list[str] | None] = [None] * (len(text) + 1)
    best[0] = []
    for end in range(2, len(text) + 1):
        for start in range(0, end - 1):
            head = best[start]
            if head is not None and text[start:end] in words and (best[end] is None or len(head) + 1 < len(best[end])):
                best[end] = head + [text[start:end]]
    found = best[len(text)]
    return found if found and len(found) >= 2 else None


# A word of letters with a 0 or 1 inside (OCR misreading "o" / "i" / "l"); same length as the original.
_LOOKALIKE_RUN = re.compile(r"(?=\w*[^\W\d_]\w*[^\W\d_]\w*[^\W\d_])(?=\w*[01])[^\W\d_01]*[01][\w]*")


def _letters_for_digits(match: re.Match) -> str:
    word = match.group()
    if any(c.isdigit() and c not in "01" for c in word):
        return word
    return word.replace("0", "o").replace("1", "i")


def split_glued_word(segment: Segment, offset: int, rules: RuleSet) -> tuple[list[Word], int | None]:
    """The segment's words with the one that holds text offset `offset` cut in two there, and the
    index of the second half; (words, None) unless the cut is a lower-to-upper case change
    inside a word, or falls between label words small text ran together ("NÚMEROCELULARDE" |
    "DESTINO"). Each half gets the share of the box its characters take."""
    for index, (start, end, word) in enumerate(segment.spans):
        at = offset - start
        if not start < offset < end:
            continue
        case_change = word.text[at - 1].islower() and word.text[at].isupper()
        if not case_change and not (rules.made_of_label_words(word.text[:at]) and rules.made_of_label_words(word.text[at:])):
            continue
        x1, y1, x2, y2 = word.box
        split_x = x1 + (x2 - x1) * at / len(word.text)
        head = Word(word.index, word.text[:at], word.confidence, (x1, y1, split_x, y2), word.sent_box, word.weakest)
        tail = Word(word.index, word.text[at:], word.confidence, (split_x, y1, x2, y2), word.sent_box, word.weakest)
        return segment.words[:index] + [head, tail] + segment.words[index + 1:], index + 1
    return segment.words, None


def starts_bank_name(segment: Segment, line: Line, catalog: BankCatalog) -> bool:
    """A label word, without a colon, that begins the bank name printed right after it on its
    line ("Banco" | "Plaza": a header set in a wide font, cut in two by the gap between its
    words) is that name's first word, not a label with its value. A value set apart in its own
    column ("Banco          Mercantil") is farther than a word's gap."""
    if ":" in segment.text or len(segment.words) != 1:
        return False
    after = [other for other in line.segments if other.box[0] >= segment.box[2]]
    if not after:
        return False
    following = min(after, key=lambda other: other.box[0])
    if following.box[0] - segment.box[2] > 1.2 * max(segment.height, following.height):
        return False
    return any(match.start == 0 and match.end > len(segment.text)
               for match in catalog.find(f"{segment.text} {following.text}"))
