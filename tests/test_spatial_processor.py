from spatial_processor import group_words_into_lines, lines_to_text, split_segment_into_words


def word(text, x1, y1, x2, y2):
    return {"texto": text, "confianza": 0.9, "coordenadas": [x1, y1, x2, y2]}


def test_label_and_value_on_one_row_stay_one_line_even_if_listed_apart():
    words = [
        word("Operación:", 20, 100, 160, 130),
        word("Fecha:", 20, 50, 100, 80),
        word("003039376430", 300, 102, 500, 128),
        word("20/06/2025", 320, 49, 500, 79),
    ]
    lines = group_words_into_lines(words)
    assert lines_to_text(lines) == "Fecha: 20/06/2025\nOperación: 003039376430"
    assert lines[1]["palabras"] == [0, 2]
    assert lines[1]["coordenadas"] == [20, 100, 500, 130]


def test_slightly_tilted_rows_do_not_merge_with_neighbours():
    words = [word("Monto", 20, 100, 90, 124), word("10,00", 400, 108, 470, 132), word("Total", 20, 140, 90, 164)]
    assert lines_to_text(group_words_into_lines(words)) == "Monto 10,00\nTotal"


def test_stacked_label_and_value_are_two_lines():
    words = [word("Bs. 350,00", 20, 140, 200, 170), word("Monto", 20, 100, 100, 125)]
    assert lines_to_text(group_words_into_lines(words)) == "Monto\nBs. 350,00"


def test_empty_page():
    assert group_words_into_lines([]) == []


def test_segment_split_shares_box_by_characters():
    words = split_segment_into_words("Bs. 105,00", [100, 10, 200, 30], 0.8)
    assert [w["texto"] for w in words] == ["Bs.", "105,00"]
    assert words[0]["coordenadas"] == [100, 10, 130, 30]
    assert words[1]["coordenadas"] == [140, 10, 200, 30]
    assert split_segment_into_words("   ", [0, 0, 1, 1], 0.5) == []


def test_segment_split_uses_recognizer_positions_when_given():
    pieces = [("007941337717", 0.0, 0.9, 0.999, 0.988), ("0", 0.93, 1.0, 0.51, 0.51)]
    words = split_segment_into_words("007941337717 0", [400, 700, 620, 740], 0.97, pieces)
    assert [(w["texto"], w["confianza"], w["confianza_minima_caracter"]) for w in words] == [
        ("007941337717", 0.999, 0.988), ("0", 0.51, 0.51)]
    assert words[0]["coordenadas"] == [400, 700, 598, 740]
    assert words[1]["coordenadas"] == [605, 700, 620, 740]
