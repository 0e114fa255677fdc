"""Page geometry without models: line survey of a detection map, transforms, detection input size,
rows of a tilted page, OCR confusion repair, bank rules on text."""
import cv2
import numpy as np
import pytest

from extraction import extract_fields_from_text
from extraction.confusions import repair_numeric
from ocr.page_geometry import PageTransform, straighten, survey_lines, turn_upright
from ocr.reading import detection_size, text_height
from spatial_processor import group_boxes_into_rows


def _map_with_lines(angle, shape=(400, 300), count=8):
    binary = np.zeros(shape, dtype=np.uint8)
    centre_x = shape[1] / 2
    for row in range(count):
        y = 40 + row * 40
        dx, dy = 100 * np.cos(np.radians(angle)), 100 * np.sin(np.radians(angle))
        cv2.line(binary, (int(centre_x - dx), int(y - dy)), (int(centre_x + dx), int(y + dy)), 255, 8)
    return binary


@pytest.mark.parametrize("angle", [-8.0, -3.0, 0.0, 4.0, 9.0])
def test_survey_measures_the_tilt_of_text_lines(angle):
    survey = survey_lines(_map_with_lines(angle), (400, 300))
    assert survey.lines == 8 and not survey.turned_quarter
    assert abs(survey.skew - angle) < 1.0


def test_survey_brings_angles_back_from_a_stretched_map():
    # The page is twice as wide as the map shows it: a 10 degree line on the page looks steeper.
    page_angle = 10.0
    map_angle = np.degrees(np.arctan(np.tan(np.radians(page_angle)) * 2))
    assert abs(survey_lines(_map_with_lines(map_angle), (400, 600)).skew - page_angle) < 1.0


def test_survey_sees_a_page_turned_a_quarter():
    assert survey_lines(np.ascontiguousarray(np.rot90(_map_with_lines(0.0))), (300, 400)).turned_quarter


@pytest.mark.parametrize("turn", [90, 180, 270])
def test_turning_upright_maps_boxes_back_to_the_sent_image(turn):
    upright = np.zeros((200, 100, 3), dtype=np.uint8)
    upright[20:40, 10:60] = 255  # a word at (10, 20)-(60, 40)
    sent = np.ascontiguousarray(np.rot90(upright, k=-turn // 90))  # the client's page, turned clockwise
    transform = PageTransform(reading_shape=sent.shape[:2])
    back = turn_upright(sent, turn, transform)
    assert np.array_equal(back, upright)
    ys, xs = np.nonzero(sent[..., 0])
    assert transform.to_sent((10, 20, 60, 40)) == pytest.approx((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))


def test_straightening_maps_a_point_back_where_it_was():
    page = np.zeros((300, 200, 3), dtype=np.uint8)
    transform = PageTransform(reading_shape=page.shape[:2])
    straight = straighten(page, 6.0, transform)
    assert straight.shape[0] > 300 and straight.shape[1] > 200  # no corner lost
    point = transform.matrix @ np.array([50.0, 80.0, 1.0])
    x1, y1, x2, y2 = transform.to_sent((point[0], point[1], point[0], point[1]))
    assert (x1, y1) == pytest.approx((50.0, 80.0)) and (x2, y2) == pytest.approx((50.0, 80.0))


def test_detection_input_keeps_the_canvas_for_screenshots_and_follows_other_pages():
    canvas = (960, 544)
    assert detection_size((1600, 720), canvas) == canvas
    assert detection_size((2400, 1080), canvas) == canvas
    height, width = detection_size((720, 1600), canvas)  # landscape: a turned receipt
    assert width > height and height % 32 == 0 and width % 32 == 0
    assert abs(height * width - 960 * 544) < 0.1 * 960 * 544


def test_rows_follow_a_tilted_line_instead_of_a_band():
    # Labels and values 500 px apart, what is left of a tilt after straightening (1.6 degrees):
    # the value sits 14 px lower than its 20 px-high label; a band of overlap would split them.
    boxes = []
    for row in range(4):
        for column in range(3):
            x, y = 20 + column * 250, 100 + row * 40 + column * 7
            boxes.append((x, y, x + 120, y + 20))
    assert group_boxes_into_rows(boxes) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]]


def test_text_height_is_the_median_box_height_in_page_pixels():
    # Relative boxes (x1, y1, x2, y2, score) on a 600 px high page: 12, 18 and 60 px high.
    boxes = np.array([[0.1, 0.10, 0.5, 0.12, 0.9], [0.1, 0.20, 0.9, 0.23, 0.9], [0.1, 0.5, 0.3, 0.6, 0.9]])
    assert text_height(boxes, 600) == pytest.approx(18.0)


@pytest.mark.parametrize("text,repaired", [
    ("Bs. 10s,00", "Bs. 105,00"),
    ("B5. 104,54", "Bs. 104,54"),
    ("27061O25", "27061025"),
    ("04l2-53l8244", "0412-5318244"),
    ("Bs pagos SOS", "Bs pagos SOS"),  # words are not numbers
    ("OlSB", "OlSB"),  # no digit: nothing to repair
    ("1.267.99", "1.267,99"),  # a decimal comma read as a point after thousands groups
    ("Bs 12,345,678,90", "Bs 12,345,678.90"),
    ("1.267.990", "1.267.990"),  # three digits: a thousands group, left alone
    ("267.99", "267.99"),  # no thousands group: already a decimal point
    ("27.061.025", "27.061.025"),  # a cédula's groups
    ("238,.40", "238, 40"),  # a second mark beside the decimal comma
    ("1.238.,40", "1.238, 40"),  # after thousands groups the decimal mark is the other one
    ("238,.400", "238,.400"),  # three digits after: not cents, left alone
    ("V-28.094 436", "V-28.094.436"),  # a thousands point read as a space
    ("0414 123 4567", "0414 123 4567"),  # spaces between undotted digits are not points
])
def test_repair_undoes_confusions_only_inside_numbers(text, repaired):
    assert repair_numeric(text) == repaired
    assert len(repair_numeric(text)) == len(text)


def test_a_bank_in_the_body_without_label_is_never_the_origin():
    result = extract_fields_from_text("Pago Movil\nVILLEGAS E-82836752 - MERCANTIL\nMonto: Bs. 10,00\n"
                                      "Referencia: 123456789")
    assert result["extracted_fields"]["banco_origen"] is None


def test_the_app_brand_in_the_header_gives_the_origin():
    result = extract_fields_from_text("Banesco\nPago Móvil exitoso\nMonto: Bs. 20,57\nRef.: 405622415499")
    assert result["extracted_fields"]["banco_origen"] == "Banesco"


def test_a_beneficiary_line_gives_phone_cedula_and_destination_bank():
    result = extract_fields_from_text("0416-8664354 JOSÉ QUIÑÓNEZ\nV25521626 - PLAZA\nMonto:  Bs. 62,00")
    got = result["extracted_fields"]
    assert (got["telefono"], got["cedula"], got["banco_destino"], got["beneficiario"]) == \
        ("04168664354", "V-25521626", "Banco Plaza", "JOSÉ QUIÑÓNEZ")
    assert got["banco_origen"] is None
    assert result["campos_detalle"]["telefono"]["regla"] == "telefono.linea_beneficiario"


def test_repair_is_recorded_in_campos_detalle():
    result = extract_fields_from_text("Referencia:  0O3162521l73")
    assert result["extracted_fields"]["referencia"] == "003162521173"
    assert result["campos_detalle"]["referencia"]["reparacion_ocr"] == {
        "texto_leido": "0O3162521l73", "texto_reparado": "003162521173"}
