"""Issue 23 in a real browser (Debian's Chromium + Selenium, the real service with its OCR worker,
a generated receipt), at 1366x900 and 390x844:

- a slip loses nothing: clearing the Monto box (Selenium's clear() blurs it, as a person tabbing
  away does) saves nothing; "Dejar vacío" is the explicit way, and it can be undone from the
  history, which reconciles again (this part fails on the desk before issue 23: the cleared box
  saved monto -> null at once);
- approving a receipt that is not reconciled asks first, and the decision records it;
- two clerks sign in with their own accounts and the history shows each one's name; a disabled
  account's session ends at its next request;
- amounts, dates and times the Venezuelan way (Caracas time), messages in Spanish for the desk's
  states and the API's error answers, with no English word; box captions never cover each other
  or a box. Screenshots of the sign-in, queue, receipt and history at both widths land in the
  test's tmp dir (and in REVIEW_SCREENSHOTS_DIR when set).
"""
import re
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import requests

from benchmarks.service_process import running_service
from service.access import create_key
from service.staff import create_staff
from tests.test_review_browser import (
    RECEIPT_SEED,
    WAIT,
    browser,
    choose_state,
    processed,
    screenshot,
    upload,
    wait_listed,
)
from tests.test_tenants import ADMIN_KEY, _migrated, keyed
from tools.receipt_generator import generate_receipt

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

PASSWORD = "clave-de-prueba-1"
SIZES = ((1366, 900), (390, 844))
CARACAS = ZoneInfo("America/Caracas")
# Words of the API and of code that a clerk must never read in the desk.
ENGLISH = re.compile(r"\b(the|not|found|invalid|amount|must|value|pending|processed|processing|success|failed|"
                     r"unknown|null|true|false|approved|rejected|field|database|unavailable|retry|shortly|key|"
                     r"upload|please|required|confidence|below|minimum|none|review|session|token|date|reference|"
                     r"phone|legible value|digits|forbidden|unauthorized|expired|request|error code)\b", re.I)
CODE_WORD = re.compile(r"\b[a-z]+_[a-z_]+\b")
# The error answers of the API the desk must put in Spanish, each with an English message.
ERROR_ANSWERS = (("database_unavailable", 503), ("rate_limited", 429), ("not_processed", 409), ("csrf_failed", 403),
                 ("invalid_parameter", 400), ("storage_unavailable", 503), ("something_new", 500))


def sign_in_as(driver, base, name, password=PASSWORD):
    driver.delete_all_cookies()
    driver.get(f"{base}/review/login")
    driver.find_element(By.ID, "usuario").send_keys(name)
    driver.find_element(By.ID, "clave").send_keys(password)
    driver.find_element(By.ID, "entrar").click()
    WebDriverWait(driver, WAIT).until(EC.presence_of_element_located((By.ID, "lista")))


def api_view(base, key, upload_id):
    return requests.get(f"{base}/api/uploads/{upload_id}", headers=keyed(key), timeout=30).json()["upload"]


def shown_text(driver):
    return driver.execute_script("return document.body.innerText;")


def assert_spanish(text, where):
    english = ENGLISH.findall(text)
    assert not english, (where, english, text[:2000])
    codes = [word for word in CODE_WORD.findall(text) if "@" not in word]
    assert not codes, (where, codes, text[:2000])


def open_receipt(driver, upload_id):
    choose_state(driver, "todos")
    wait_listed(driver, upload_id).click()
    WebDriverWait(driver, WAIT).until(lambda d: d.find_element(By.ID, "recibo-titulo").text.startswith(f"#{upload_id}")
                                      and d.execute_script("var i = document.getElementById('imagen');"
                                                           " return i.complete && i.naturalWidth > 0;"))
    WebDriverWait(driver, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#cajas .caja"))


def check_captions(driver):
    """Shown captions cover no other caption and no box; every box keeps its name (hover or focus)."""
    found = driver.execute_script("""
        var boxes = Array.prototype.slice.call(document.querySelectorAll('#cajas .caja'));
        var shown = [];
        boxes.forEach(function (b) {
          var c = b.querySelector('.caja-nombre');
          if (getComputedStyle(c).display !== 'none') shown.push([b.getAttribute('data-campo'), c.getBoundingClientRect().toJSON()]);
        });
        return {boxes: boxes.map(function (b) { return [b.getAttribute('data-campo'), b.getBoundingClientRect().toJSON(),
                                                       b.querySelector('.caja-nombre').textContent]; }),
                shown: shown};""")
    assert found["boxes"], found

    def overlap(a, b):
        return a["left"] + 0.5 < b["right"] and b["left"] + 0.5 < a["right"] and \
            a["top"] + 0.5 < b["bottom"] and b["top"] + 0.5 < a["bottom"]
    for index, (name, rect) in enumerate(found["shown"]):
        for other, other_rect in found["shown"][index + 1:]:
            assert not overlap(rect, other_rect), ("captions overlap", name, other)
        for other, box, _ in found["boxes"]:
            assert not overlap(rect, box), ("caption covers a box", name, other)
    assert all(label for _, _, label in found["boxes"])
    return found


def fake_error_for_next_patch(driver, code, status):
    driver.execute_script("""
        var code = arguments[0], status = arguments[1];
        window.__fetch = window.__fetch || window.fetch;
        window.fetch = function (url, options) {
          if (options && options.method === 'PATCH') {
            window.fetch = window.__fetch;
            var body = {success: false, error: {code: code, message: 'The database is unavailable; retry shortly',
                        details: {field: 'referencia'}}};
            return Promise.resolve(new Response(JSON.stringify(body), {status: status,
                                                headers: {'Content-Type': 'application/json'}}));
          }
          return window.__fetch.apply(this, arguments);
        };""", code, status)


def test_a_team_reviews_in_chromium_without_losing_a_value(tmp_path, database_url):
    db = _migrated(database_url)
    machine, _ = create_key(db, "tienda", name="bot de la tienda")
    create_staff(db, "tienda", "ana", PASSWORD, "admin", "ana@tienda.ve", "Ana Pérez")
    create_staff(db, "tienda", "luis", PASSWORD, "revisor", None, "Luis Díaz")
    db.dispose()
    receipt = generate_receipt(RECEIPT_SEED, variant="clean")
    with running_service(tmp_path / "storage", database_url, API_KEYS=ADMIN_KEY, LOGIN_RATE_LIMIT_PER_MINUTE="0",
                         print_log_tail=True) as service:
        base = service.base
        receipt_id = upload(base, machine, receipt, "pago.png", nombre="Ana Cliente", numerosorteo="A",
                            fechasorteo="20250711")
        view = processed(base, machine, receipt_id)
        monto = view["result"]["extracted_fields"]["monto"]
        assert view["status"] == "processed" and monto, view["result"]["extracted_fields"]
        whole, _, cents = monto.partition(".")
        shown_monto = f"{int(whole):,}".replace(",", ".") + "," + (cents + "00")[:2]

        driver = browser()
        try:
            for width, height in SIZES:
                tag = f"{width}x{height}"
                driver.set_window_size(width, height)
                driver.delete_all_cookies()
                driver.get(f"{base}/review/login")
                assert_spanish(shown_text(driver), "sign-in")
                screenshot(driver, tmp_path, f"review-entrada-{tag}.png")
                sign_in_as(driver, base, "luis")
                assert driver.find_element(By.ID, "persona").text == "Luis Díaz"
                choose_state(driver, "todos")
                item = wait_listed(driver, receipt_id)
                WebDriverWait(driver, WAIT).until(lambda d: f"{shown_monto} Bs" in d.find_element(By.ID, f"item-{receipt_id}").text)
                assert re.search(r"\d{2}/\d{2}/\d{4} \d{2}:\d{2}", item.text), item.text
                open_receipt(driver, receipt_id)
                input_box = driver.find_element(By.ID, "campo-monto")
                assert input_box.get_attribute("value") == shown_monto
                check_captions(driver)
                driver.execute_script("document.getElementById('recibo').scrollTop = 0; window.scrollTo(0, 0);")
                screenshot(driver, tmp_path, f"review-recibo-{tag}.png")

                # The slip: the box cleared (and left) saves nothing.
                input_box.clear()
                driver.find_element(By.ID, "nota").click()
                WebDriverWait(driver, WAIT).until(lambda d: "no se guardó" in d.find_element(By.ID, "error-monto").text)
                time.sleep(1.5)  # a save, had one been sent, would have landed by now
                assert api_view(base, machine, receipt_id)["result"]["extracted_fields"]["monto"] == monto
                input_box = driver.find_element(By.ID, "campo-monto")
                input_box.send_keys(Keys.ENTER)  # Enter on the empty box: still nothing
                time.sleep(1.0)
                assert api_view(base, machine, receipt_id)["result"]["extracted_fields"]["monto"] == monto
                input_box.send_keys(Keys.ESCAPE)
                assert driver.find_element(By.ID, "campo-monto").get_attribute("value") == shown_monto

                # An unreadable amount: the sentence says how to write it.
                input_box = driver.find_element(By.ID, "campo-monto")
                input_box.send_keys(Keys.CONTROL, "a")
                input_box.send_keys("210", Keys.ENTER)
                WebDriverWait(driver, WAIT).until(
                    lambda d: "Escribe el monto como 210,00" in d.find_element(By.ID, "error-monto").text)
                driver.find_element(By.ID, "campo-monto").send_keys(Keys.ESCAPE)

                # Leaving it empty is its own action, and the history undoes it.
                input_box = driver.find_element(By.ID, "campo-monto")
                input_box.clear()
                driver.find_element(By.ID, "nota").click()
                WebDriverWait(driver, WAIT).until(lambda d: d.find_element(By.ID, "vaciar-monto").is_displayed())
                driver.find_element(By.ID, "vaciar-monto").click()
                WebDriverWait(driver, WAIT).until(
                    lambda d: api_view(base, machine, receipt_id)["result"]["extracted_fields"]["monto"] is None)
                cleared = api_view(base, machine, receipt_id)
                slip = cleared["corrections"][-1]
                assert (slip["campo"], slip["nuevo"], slip["por"]) == ("monto", None, "Luis Díaz")
                driver.find_element(By.CSS_SELECTOR, "#historial summary").click()
                entry = WebDriverWait(driver, WAIT).until(lambda d, at=slip["id"]: d.find_element(
                    By.CSS_SELECTOR, f'li[data-correccion="{at}"]'))
                when = datetime.fromisoformat(slip["en"].replace("Z", "+00:00")).astimezone(CARACAS)
                assert f"Monto: {shown_monto} → vacío" in entry.text and "Luis Díaz" in entry.text
                assert when.strftime("%d/%m/%Y %H:%M") in entry.text, (entry.text, slip["en"])
                driver.execute_script("document.getElementById('historial').scrollIntoView({block: 'center'});")
                screenshot(driver, tmp_path, f"review-historial-{tag}.png")
                driver.find_element(By.ID, f"deshacer-{slip['id']}").click()
                WebDriverWait(driver, WAIT).until(
                    lambda d: api_view(base, machine, receipt_id)["result"]["extracted_fields"]["monto"] == monto)
                undone = api_view(base, machine, receipt_id)
                assert undone["corrections"][-1]["deshace"] == slip["id"] and undone["conciliacion"] is not None
                WebDriverWait(driver, WAIT).until(lambda d: d.find_element(By.ID, "campo-monto").get_attribute("value")
                                                  == shown_monto)

                # The desk's own messages for the API's error answers: Spanish, saying what to do.
                for code, status in ERROR_ANSWERS:
                    fake_error_for_next_patch(driver, code, status)
                    box = driver.find_element(By.ID, "campo-referencia")
                    box.send_keys(Keys.CONTROL, "a")
                    box.send_keys("99887766", Keys.ENTER)
                    WebDriverWait(driver, WAIT).until(lambda d: d.find_element(By.ID, "error-referencia").text.strip())
                    message = driver.find_element(By.ID, "error-referencia").text
                    assert_spanish(message, code)
                    driver.find_element(By.ID, "campo-referencia").send_keys(Keys.ESCAPE)

                # Approving a receipt that is not reconciled asks first; the decision says so.
                driver.execute_script("document.activeElement.blur();")
                decisions = len(api_view(base, machine, receipt_id)["decisiones"])
                driver.find_element(By.ID, "aprobar").click()
                WebDriverWait(driver, WAIT).until(lambda d: d.find_element(By.ID, "confirmar").is_displayed())
                assert "conciliado" in driver.find_element(By.ID, "confirmar-avisos").text
                assert_spanish(driver.find_element(By.ID, "confirmar").text, "confirmation")
                time.sleep(0.5)
                assert len(api_view(base, machine, receipt_id)["decisiones"]) == decisions  # nothing sent yet
                driver.execute_script("document.getElementById('confirmar').scrollIntoView({block: 'center'});")
                screenshot(driver, tmp_path, f"review-confirmar-{tag}.png")
                driver.find_element(By.ID, "confirmar-si").click()
                WebDriverWait(driver, WAIT).until(
                    lambda d, n=decisions: len(api_view(base, machine, receipt_id)["decisiones"]) == n + 1)
                review = api_view(base, machine, receipt_id)["review"]
                assert review["estado"] == "aprobado" and review["avisos"] and review["por"] == "Luis Díaz"
                decided = WebDriverWait(driver, WAIT).until(lambda d: d.find_element(By.ID, "decidido"))
                when = datetime.fromisoformat(review["en"].replace("Z", "+00:00")).astimezone(CARACAS)
                assert f"Aprobado por Luis Díaz el {when:%d/%m/%Y %H:%M} aunque" in decided.text, decided.text
                check_captions(driver)
                assert_spanish(shown_text(driver), f"receipt at {tag}")
                if width < 900:
                    driver.find_element(By.ID, "volver").click()
                driver.execute_script("document.getElementById('recibo').scrollTop = 0;")
                screenshot(driver, tmp_path, f"review-cola-{tag}.png")
                for estado in ("revisar", "duplicado", "reutilizacion", "aprobado", "rechazado", "error", "en_proceso"):
                    choose_state(driver, estado)
                    time.sleep(0.3)
                    assert_spanish(shown_text(driver), f"queue {estado} at {tag}")
                luis_cookie = driver.get_cookie("ocr_sesion")

            # A second clerk: her correction is hers in the history; a missing receipt is said in Spanish.
            driver.set_window_size(*SIZES[0])
            sign_in_as(driver, base, "ana@tienda.ve")
            open_receipt(driver, receipt_id)
            box = driver.find_element(By.ID, "campo-referencia")
            before = box.get_attribute("value")
            box.send_keys(Keys.CONTROL, "a")
            box.send_keys("99887766", Keys.ENTER)
            WebDriverWait(driver, WAIT).until(lambda d: api_view(base, machine, receipt_id)["corrections"][-1]["por"]
                                              == "Ana Pérez")
            history = [(c["campo"], c["por"]) for c in api_view(base, machine, receipt_id)["corrections"]]
            assert ("monto", "Luis Díaz") in history and ("referencia", "Ana Pérez") == history[-1]
            driver.find_element(By.CSS_SELECTOR, "#historial summary").click()
            shown = driver.find_element(By.ID, "correcciones").text
            assert "Luis Díaz" in shown and "Ana Pérez" in shown and f"{before} → 99887766" in shown
            driver.get(f"{base}/review#recibo=999999")
            WebDriverWait(driver, WAIT).until(lambda d: "No se puede abrir" in d.find_element(By.ID, "nuevos").text)
            assert_spanish(driver.find_element(By.ID, "nuevos").text, "missing receipt")

            # Ana disables Luis in the desk: his saved session stops at its next request.
            driver.find_element(By.ID, "ir-equipo").click()
            row = WebDriverWait(driver, WAIT).until(lambda d: d.find_element(By.CSS_SELECTOR, 'tr[data-usuario="luis"]'))
            row.find_element(By.CSS_SELECTOR, 'button[value="desactivar"]').click()
            WebDriverWait(driver, WAIT).until(lambda d: "desactivada" in d.find_element(By.ID, "mensaje-equipo").text)
            assert_spanish(shown_text(driver), "team page")
            driver.delete_all_cookies()
            driver.add_cookie({"name": "ocr_sesion", "value": luis_cookie["value"], "path": "/"})
            driver.get(f"{base}/review")
            WebDriverWait(driver, WAIT).until(EC.presence_of_element_located((By.ID, "form-entrada")))
            replay = requests.get(f"{base}/api/uploads/{receipt_id}", cookies={"ocr_sesion": luis_cookie["value"]},
                                  timeout=30)
            assert replay.status_code == 401
        finally:
            driver.quit()


def test_clearing_the_amount_box_saves_nothing(tmp_path, database_url):
    """The slip of issue 23 on its own, signed in with a key as the desk before it allowed: the
    Monto box cleared and left (Selenium's clear() blurs it) must not store monto -> null. On the
    desk before issue 23 it did, at once."""
    db = _migrated(database_url)
    machine, _ = create_key(db, "tienda", name="bot de la tienda")
    db.dispose()
    receipt = generate_receipt(RECEIPT_SEED, variant="clean")
    with running_service(tmp_path / "storage", database_url, API_KEYS=ADMIN_KEY, LOGIN_RATE_LIMIT_PER_MINUTE="0",
                         print_log_tail=True) as service:
        base = service.base
        receipt_id = upload(base, machine, receipt, "pago.png", nombre="Ana Cliente")
        monto = processed(base, machine, receipt_id)["result"]["extracted_fields"]["monto"]
        assert monto
        driver = browser()
        try:
            for size in SIZES:
                driver.set_window_size(*size)
                driver.delete_all_cookies()
                driver.get(f"{base}/review/login")
                driver.find_element(By.ID, "clave").send_keys(machine)
                driver.find_element(By.ID, "entrar").click()
                WebDriverWait(driver, WAIT).until(EC.presence_of_element_located((By.ID, "lista")))
                open_receipt(driver, receipt_id)
                driver.find_element(By.ID, "campo-monto").clear()
                driver.find_element(By.ID, "nota").click()
                time.sleep(2)  # a save, had one been sent, would have landed by now
                after = api_view(base, machine, receipt_id)
                assert after["result"]["extracted_fields"]["monto"] == monto, size
                assert after["corrections"] == [], size
        finally:
            driver.quit()
