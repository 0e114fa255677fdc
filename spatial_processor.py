"""Rebuilding receipt rows from word boxes.

Detectors return text segments in no useful order, and OnnxTR's block grouping separates a label
column from its value column. A receipt is read row by row, so words are grouped into lines by
vertical overlap and each line is sorted left to right: "Operación: 003039376430" stays one line
and label/value pairs can be recovered from it.
"""
from __future__ import annotations

from typing import Any

# Two boxes share a row when their vertical overlap covers this share of the shorter box.
MIN_ROW_OVERLAP = 0.5


def _vertical_overlap_ratio(top_a: float, bottom_a: float, top_b: float, bottom_b: float) -> float:
    overlap = min(bottom_a, bottom_b) - max(top_a, top_b)
    shorter = min(bottom_a - top_a, bottom_b - top_b)
    if shorter <= 0:
        return 0.0
    return max(0.0, overlap) / shorter


def group_words_into_lines(words: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Lines of a page: `{"texto", "coordenadas", "palabras": [indices into words]}`, top to bottom.

    `words` use the engine's shape: `{"texto", "confianza", "coordenadas": [x1, y1, x2, y2]}`.
    """
    order = sorted(range(len(words)), key=lambda i: (words[i]["coordenadas"][1] + words[i]["coordenadas"][3]) / 2)
    rows: list[dict[str, Any]] = []  # each: members, and the mean top/bottom of its members
    for index in order:
        x1, y1, x2, y2 = words[index]["coordenadas"]
        best_row, best_ratio = None, MIN_ROW_OVERLAP
        # Only recent rows can overlap: words arrive sorted by vertical centre.
        for row in rows[-4:]:
            ratio = _vertical_overlap_ratio(y1, y2, row["top"], row["bottom"])
            if ratio >= best_ratio:
                best_row, best_ratio = row, ratio
        if best_row is None:
            rows.append({"members": [index], "top": float(y1), "bottom": float(y2)})
            continue
        count = len(best_row["members"])
        best_row["top"] = (best_row["top"] * count + y1) / (count + 1)
        best_row["bottom"] = (best_row["bottom"] * count + y2) / (count + 1)
        best_row["members"].append(index)

    lines = []
    for row in sorted(rows, key=lambda r: r["top"]):
        members = sorted(row["members"], key=lambda i: words[i]["coordenadas"][0])
        boxes = [words[i]["coordenadas"] for i in members]
        lines.append({
            "texto": " ".join(words[i]["texto"] for i in members),
            "coordenadas": [
                min(b[0] for b in boxes), min(b[1] for b in boxes),
                max(b[2] for b in boxes), max(b[3] for b in boxes),
            ],
            "palabras": members,
        })
    return lines


def lines_to_text(lines: list[dict[str, Any]]) -> str:
    return "\n".join(line["texto"] for line in lines)


def split_segment_into_words(text: str, box: list[int], confidence: float,
                             pieces: list[tuple[str, float, float, float]] | None = None) -> list[dict[str, Any]]:
    """Words of a detected text segment, each with its own box.

    The detector finds runs of text ("0412-5318244 BINGO TRÉBOL"); the seed's JSON lists words.
    `pieces` (from the recognizer's CTC time steps: text, start and end as fractions of the box
    width, confidence) place each word where its characters were read. Without them the box is
    shared out by character count, exact for monospaced text and within a character or two for
    receipt fonts.
    """
    x1, y1, x2, y2 = box
    width = x2 - x1
    if pieces:
        return [
            {
                "texto": piece,
                "confianza": round(piece_confidence, 4),
                "coordenadas": [int(round(x1 + start * width)), y1, max(int(round(x1 + end * width)), int(round(x1 + start * width)) + 1), y2],
            }
            for piece, start, end, piece_confidence in pieces
        ]
    tokens = text.split()
    if len(tokens) <= 1:
        return [{"texto": text.strip(), "confianza": confidence, "coordenadas": list(box)}] if text.strip() else []
    per_char = width / max(len(text), 1)
    words, cursor = [], 0
    for token in tokens:
        start = text.index(token, cursor)
        cursor = start + len(token)
        words.append({
            "texto": token,
            "confianza": confidence,
            "coordenadas": [int(round(x1 + start * per_char)), y1, int(round(x1 + cursor * per_char)), y2],
        })
    return words
