"""Rebuilding receipt rows from word boxes: the one place where words become rows.

Detectors return text segments in no useful order, and OnnxTR's block grouping separates a label
column from its value column. A receipt is read row by row, so words are grouped into rows and
each row is sorted left to right: "Operación: 003039376430" stays one line and label/value pairs
can be recovered from it.

A row is a fitted line, not a fixed vertical band: each row keeps the centres of its words and a
word joins the row whose line, extended to the word's position, passes through the word. What
tilt or perspective is left after straightening bends rows gently; a band would cut them apart
("Monto" on one row, its value half a line lower on the next).
"""
from __future__ import annotations

from typing import Any, Sequence

Box = Sequence[float]  # x1, y1, x2, y2

# A word belongs to a row when the row's line passes within this share of the word's height
# from the word's centre.
MAX_ROW_OFFSET = 0.5
# Tilt a row may still have after the page was straightened (tan of about 2 degrees): a word far
# to the right of a row's words may sit this much lower or higher per pixel of distance.
RESIDUAL_TILT = 0.035
# Rows considered for each word: words arrive sorted by vertical centre, so only recent rows
# can still be reached.
RECENT_ROWS = 6


class _Row:
    def __init__(self, index: int, box: Box) -> None:
        self.members = [index]
        self.xs = [(box[0] + box[2]) / 2]
        self.ys = [(box[1] + box[3]) / 2]
        self.heights = [box[3] - box[1]]
        self.slope = 0.0

    def distance_x(self, x: float) -> float:
        return min(abs(x - member_x) for member_x in self.xs)

    def centre_at(self, x: float) -> float:
        mean_x, mean_y = sum(self.xs) / len(self.xs), sum(self.ys) / len(self.ys)
        return mean_y + self.slope * (x - mean_x)

    def add(self, index: int, box: Box) -> None:
        self.members.append(index)
        self.xs.append((box[0] + box[2]) / 2)
        self.ys.append((box[1] + box[3]) / 2)
        self.heights.append(box[3] - box[1])
        mean_x, mean_y = sum(self.xs) / len(self.xs), sum(self.ys) / len(self.ys)
        spread = sum((x - mean_x) ** 2 for x in self.xs)
        height = sum(self.heights) / len(self.heights)
        # A slope needs words far enough apart to mean anything; rows stay near level.
        if spread > (2 * height) ** 2 * len(self.xs):
            slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(self.xs, self.ys)) / spread
            self.slope = max(-0.1, min(0.1, slope))

    @property
    def top(self) -> float:
        return min(y - h / 2 for y, h in zip(self.ys, self.heights))


def group_boxes_into_rows(boxes: Sequence[Box]) -> list[list[int]]:
    """Indices of `boxes` grouped into rows: rows top to bottom, each left to right."""
    order = sorted(range(len(boxes)), key=lambda i: (boxes[i][1] + boxes[i][3]) / 2)
    rows: list[_Row] = []
    for index in order:
        box = boxes[index]
        centre_x, centre_y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        height = max(1.0, box[3] - box[1])
        best, best_offset = None, float("inf")
        for row in rows[-RECENT_ROWS:]:
            row_height = sum(row.heights) / len(row.heights)
            shorter = max(1.0, min(height, row_height))
            offset = abs(centre_y - row.centre_at(centre_x)) / shorter
            allowed = MAX_ROW_OFFSET + RESIDUAL_TILT * row.distance_x(centre_x) / shorter
            if offset <= allowed and offset < best_offset:
                best, best_offset = row, offset
        if best is None:
            rows.append(_Row(index, box))
        else:
            best.add(index, box)
    rows.sort(key=lambda r: r.top)
    return [sorted(row.members, key=lambda i: boxes[i][0]) for row in rows]


def group_words_into_lines(words: list[dict[str, Any]], frame: str = "coordenadas") -> list[dict[str, Any]]:
    """Lines of a page: `{"texto", "coordenadas", "palabras": [indices into words]}`, top to bottom.

    `words` use the engine's shape: `{"texto", "confianza", "coordenadas": [x1, y1, x2, y2]}`.
    Rows are found with the boxes under `frame` (the upright reading frame of a turned or tilted
    page); a line's `coordenadas` stay the union of its words' `coordenadas`.
    """
    lines = []
    for members in group_boxes_into_rows([w[frame] for w in words]):
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
                             pieces: list[tuple[str, float, float, float, float]] | None = None) -> list[dict[str, Any]]:
    """Words of a detected text segment, each with its own box.

    The detector finds runs of text ("0412-5318244 BINGO TRÉBOL"); the seed's JSON lists words.
    `pieces` (from the recognizer's CTC time steps: text, start and end as fractions of the box
    width, confidence, weakest character's probability) place each word where its characters were
    read and give it `confianza_minima_caracter`. Without them the box is shared out by character
    count, exact for monospaced text and within a character or two for receipt fonts.
    """
    x1, y1, x2, y2 = box
    width = x2 - x1
    if pieces:
        return [
            {
                "texto": piece,
                "confianza": round(piece_confidence, 4),
                "confianza_minima_caracter": round(weakest, 4),
                "coordenadas": [int(round(x1 + start * width)), y1, max(int(round(x1 + end * width)), int(round(x1 + start * width)) + 1), y2],
            }
            for piece, start, end, piece_confidence, weakest in pieces
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
