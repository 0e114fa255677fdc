"""CTC readings: an icon read as a trailing character becomes its own word, never part of a number."""
import numpy as np

from ocr.ppocr import Reading, is_allowed_char, last_glyph_off_colour


def reading(text, probs, steps=None):
    steps = steps or [2 + 3 * i for i in range(len(text))]
    return Reading(chars=list(text), steps=steps, probs=probs, total_steps=steps[-1] + 4)


def test_unsure_trailing_glyph_is_split_off():
    # The copy icon after "Operación: 007941337717" read as a "0" of probability 0.51.
    r = reading("0079413377170", [1.0] * 12 + [0.51])
    assert r.text == "007941337717 0"
    pieces = r.pieces(step_width=8.0, crop_width=8.0 * r.total_steps)
    assert [p[0] for p in pieces] == ["007941337717", "0"]
    assert pieces[0][3] == 1.0 and pieces[1][3] == 0.51
    assert 0 <= pieces[0][1] < pieces[0][2] <= pieces[1][1] < pieces[1][2] <= 1


def test_pieces_carry_their_weakest_character():
    # "faltante" read as "fattante": the mean (0.95) hides the one letter read at 0.62.
    r = reading("fattante", [1.0, 1.0, 0.62, 1.0, 1.0, 1.0, 1.0, 1.0])
    (text, _, _, confidence, weakest), = r.pieces(step_width=8.0, crop_width=8.0 * r.total_steps)
    assert text == "fattante" and round(confidence, 3) == 0.953 and weakest == 0.62


def test_far_trailing_character_is_split_off_even_when_confident():
    steps = [2, 4, 7, 9, 12, 14, 17, 19, 22, 31]
    assert reading("1874533115", [1.0] * 10, steps).text == "187453311 5"


def test_confident_evenly_spaced_digits_stay_one_word():
    assert reading("003039376430", [0.99] * 12).text == "003039376430"
    # One unsure digit inside the number is not an edge glyph: the reading is kept whole.
    assert reading("0030393764", [1.0, 1.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]).text == "0030393764"


def test_short_readings_are_never_split():
    assert reading("Bs", [1.0, 0.3]).text == "Bs"


def test_whitelist_keeps_spanish_and_currency_and_drops_cjk():
    assert all(is_allowed_char(c) for c in "áéíóúñÑü€$°@•*")
    assert not any(is_allowed_char(c) for c in "中文字")


def test_labels_are_never_split():
    # "Cédula" read with an unsure first letter stays one word: only numbers lose edge glyphs.
    assert reading("Cédula", [0.4, 1.0, 1.0, 1.0, 1.0, 1.0]).text == "Cédula"
    assert reading("Operación", [1.0] * 8 + [0.3]).text == "Operación"


def test_copy_icon_a_little_apart_after_alternating_spacing_is_split_off():
    # Regression: BNC's reference "2093747207" then its copy icon read as "0" at 0.81, 4 steps on.
    # The digits alternate 2 and 3 steps apart: a median of 3 hid the gap, their mean (2.5) shows it.
    steps = [2, 4, 7, 9, 12, 15, 17, 20, 22, 25, 29]
    assert reading("20937472070", [1.0] * 10 + [0.813], steps).text == "2093747207 0"
    # The same digit at the usual spacing is part of the number.
    assert reading("20937472070", [1.0] * 10 + [0.813], steps[:-1] + [27]).text == "20937472070"
    # BDV's "006011274872" with its icon read as "1" at 0.62, 3 steps on, digits mostly 2 apart.
    steps = [1, 4, 6, 8, 10, 13, 15, 18, 20, 22, 25, 27, 30]
    assert reading("0060112748721", [1.0] * 12 + [0.624], steps).text == "006011274872 1"


def test_copy_icon_a_step_further_and_unsure_is_split_off():
    # Regression (generated BDV receipt 3001, dark, re-screenshotted): the icon cut by the crop's
    # edge read as "1" at 0.70, 4 steps after digits 3 apart.
    steps = [2, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31, 34, 38]
    assert reading("0099425098251", [1.0] * 12 + [0.695], steps).text == "009942509825 1"
    # A last digit read surely, or as unsurely at the usual spacing, stays.
    assert reading("0099425098251", [1.0] * 12 + [0.85], steps).text == "0099425098251"
    assert reading("0099425098251", [1.0] * 12 + [0.695], steps[:-1] + [37]).text == "0099425098251"


def _printed_crop(last_colour):
    from PIL import Image, ImageDraw, ImageFont

    crop = Image.new("RGB", (300, 48), (235, 235, 235))
    draw = ImageDraw.Draw(crop)
    draw.text((4, 8), "00217364523", fill=(40, 40, 40), font=ImageFont.truetype("DejaVuSans.ttf", 28))
    draw.rectangle((266, 12, 286, 36), outline=last_colour, width=3)  # the copy icon
    return np.asarray(crop)


def test_a_last_glyph_in_another_colour_than_the_digits_is_split_off():
    # Regression (generated BDV receipt 3032 in a viewer): the magenta copy icon read as "1" at
    # 0.72 at the digits' own spacing; only its colour tells it from a twelfth digit.
    steps = [1, 4, 6, 9, 12, 14, 17, 19, 22, 24, 27, 30]
    probs = [1.0] * 11 + [0.718]
    step_pixels = 276 / 31  # the icon's centre (x 276) at step 30
    magenta = reading("002173645231", probs, steps)
    magenta.last_glyph_off_colour = last_glyph_off_colour(_printed_crop((200, 20, 110)), magenta, step_pixels)
    assert magenta.last_glyph_off_colour and magenta.text == "00217364523 1"
    grey = reading("002173645231", probs, steps)
    grey.last_glyph_off_colour = last_glyph_off_colour(_printed_crop((40, 40, 40)), grey, step_pixels)
    assert not grey.last_glyph_off_colour and grey.text == "002173645231"
