"""Issue 12 in a real browser: Debian's Chromium driven by Selenium against the real service
(gunicorn web processes + the OCR worker) with generated receipts (no real personal data).

Sign in; the queue lists a receipt that needs review; its view shows the image with one box per
found field exactly over the field's word coordinates; an invalid edit shows the API's error, a
valid one changes GET /api/uploads/<id>; approving moves it to the approved filter; a new upload
appears without reloading; a second tenant's key sees none of it; posts without the CSRF token
are refused; a receipt paid by a statement's credit shows that credit. Screenshots of the queue
and a receipt land in the test's tmp dir (a CI artifact); with REVIEW_SCREENSHOTS_DIR set they are
written there too (docs/ was made that way).
"""
import os
import re
import shutil
import time
from pathlib import Path

import pytest
import requests

from benchmarks.service_process import running_service
from service.access import create_key
from tests.test_tenants import ADMIN_KEY, _migrated, keyed
from tools.receipt_generator import generate_receipt
from tools.statement_generator import statement_for_receipts

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WAIT = 60
# A receipt whose fields the OCR reads (BDV layout, clean PNG): uploaded twice, the copy needs review.
RECEIPT_SEED = 8
# A receipt paid into a BNC account (bnc_tsv statements): its view shows the credit it matched.
PAID_SEED = 118


def browser(width=1440, height=1000):
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.fail("chromium and chromium-driver are needed (apt-get install -y chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={width},{height}", "--lang=es", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    driver.set_window_size(width, height)
    return driver


def upload(base, key, receipt, name, **metadata):
    answer = requests.post(f"{base}/api/upload", headers=keyed(key), timeout=60, data=metadata,
                           files={"files": (name, receipt.image_bytes, "image/png")})
    assert answer.status_code == 200, answer.text
    return answer.json()["files_processed"][0]["id"]


def processed(base, key, upload_id, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = requests.get(f"{base}/api/uploads/{upload_id}", headers=keyed(key), timeout=30).json()["upload"]
        if view["status"] in ("processed", "error"):
            return view
        time.sleep(0.5)
    raise AssertionError(f"upload {upload_id} not processed in {timeout}s")


def sign_in(driver, base, key):
    driver.delete_all_cookies()
    driver.get(f"{base}/review/login")
    driver.find_element(By.ID, "clave").send_keys(key)
    driver.find_element(By.ID, "entrar").click()
    WebDriverWait(driver, WAIT).until(EC.presence_of_element_located((By.ID, "lista")))


def choose_state(driver, estado):
    driver.find_element(By.CSS_SELECTOR, f'input[name="estado"][value="{estado}"]').click()


def wait_listed(driver, upload_id, present=True):
    locator = (By.ID, f"item-{upload_id}")
    condition = EC.presence_of_element_located(locator) if present else EC.invisibility_of_element_located(locator)
    return WebDriverWait(driver, WAIT).until(condition)


def screenshot(driver, tmp_path, name):
    path = tmp_path / "screenshots" / name
    path.parent.mkdir(exist_ok=True)
    assert driver.save_screenshot(str(path))
    extra = os.environ.get("REVIEW_SCREENSHOTS_DIR")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / name)
    return path


def fetch_status(driver, method, path, headers):
    """Status of a fetch made by the page itself, with its session cookie."""
    return driver.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "fetch(arguments[1], {method: arguments[0], headers: arguments[2], credentials: 'same-origin', body: '{}'})"
        ".then(function (r) { return r.json().then(function (b) { done([r.status, b.error && b.error.code]); }); })"
        ".catch(function (e) { done([0, String(e)]); });", method, path, headers)


def with_markup_in_descriptions(data: bytes) -> bytes:
    """A bnc_tsv export whose credits' descriptions carry HTML, as a hostile or broken export could."""
    lines = []
    for line in data.split(b"\n"):
        cells = line.split(b"\t")
        if len(cells) > 4 and cells[0][:1].isdigit() and cells[4].strip():
            cells[2] += b" <img src=x onerror=alert(1)>"
        lines.append(b"\t".join(cells))
    return b"\n".join(lines)


def check_reconciliation(driver, base, key, paid):
    """The paid receipt's view shows its state and the credit it matched, the bank's text as text."""
    view = requests.get(f"{base}/api/uploads/{paid}", headers=keyed(key), timeout=30).json()["upload"]
    assert view["conciliacion"]["estado"] == "conciliado", view["conciliacion"]
    movement = view["conciliacion"]["movimiento"]
    driver.get(f"{base}/review")
    choose_state(driver, "todos")
    wait_listed(driver, paid).click()
    WebDriverWait(driver, WAIT).until(lambda d: d.find_element(By.ID, "conciliacion").is_displayed()
                                      and d.find_element(By.ID, "recibo-titulo").text.startswith(f"#{paid}"))
    assert driver.find_element(By.ID, "conciliacion-estado").text == "Conciliado"
    shown = driver.find_element(By.ID, "conciliacion-datos").text
    whole, _, cents = movement["monto"].partition(".")
    amount = f"{int(whole):,}".replace(",", ".") + "," + (cents + "00")[:2] + " Bs"
    year, month, day = movement["fecha"][:10].split("-")
    for value in (f"línea {movement['linea']} del extracto #{movement['extracto']}", movement["referencia"],
                  amount, f"{day}/{month}/{year}", "<img src=x onerror=alert(1)>"):
        assert value in shown, (value, shown)
    assert driver.find_elements(By.CSS_SELECTOR, "#conciliacion img") == []  # shown, never parsed


def check_boxes(driver, view):
    """One box per found field, each exactly over the field's coordinates scaled to the shown image."""
    detail = view["result"]["campos_detalle"]
    found = {name: d["coordenadas"] for name, d in detail.items() if d.get("valor") is not None and d.get("coordenadas")}
    assert len(found) >= 4, detail  # the OCR read the receipt: something to box
    WebDriverWait(driver, WAIT).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#cajas .caja")) == len(found))
    image = driver.find_element(By.ID, "imagen")
    natural_width, natural_height = driver.execute_script(
        "return [arguments[0].naturalWidth, arguments[0].naturalHeight];", image)
    shown = image.rect
    scale_x, scale_y = shown["width"] / natural_width, shown["height"] / natural_height
    for name, (x1, y1, x2, y2) in found.items():
        box = driver.find_element(By.CSS_SELECTOR, f'#cajas .caja[data-campo="{name}"]')
        rect = box.rect
        expected = {"x": shown["x"] + x1 * scale_x, "y": shown["y"] + y1 * scale_y,
                    "width": (x2 - x1) * scale_x, "height": (y2 - y1) * scale_y}
        for side in ("x", "y", "width", "height"):
            assert abs(rect[side] - expected[side]) <= 1.5, (name, side, rect, expected)
        assert box.find_element(By.CSS_SELECTOR, ".caja-nombre").get_attribute("textContent")  # labelled
        confidence = detail[name].get("confianza") or 0
        assert ("conf-alta" if confidence >= 0.85 else "conf-media" if confidence >= 0.6 else "conf-baja") in \
            box.get_attribute("class")
    return found


def test_the_review_desk_in_chromium(tmp_path, database_url):
    db = _migrated(database_url)
    staff, _ = create_key(db, "tienda", name="maria")
    stranger, _ = create_key(db, "otra", name="pedro")
    db.dispose()
    receipt = generate_receipt(RECEIPT_SEED, variant="clean")
    with running_service(tmp_path / "storage", database_url, API_KEYS=ADMIN_KEY, LOGIN_RATE_LIMIT_PER_MINUTE="0",
                         print_log_tail=True) as service:
        base = service.base
        first = upload(base, staff, receipt, "pago.png", nombre="Ana Pérez", idWhatsapp="584141234567@lid",
                       numerosorteo="A", fechasorteo="20250711", horamin="14-30")
        processed(base, staff, first)
        copy = upload(base, staff, receipt, "otra-vez.png", nombre="Luis Díaz", idWhatsapp="584249876543@lid",
                      numerosorteo="B", fechasorteo="20250712", horamin="09-15")
        view = processed(base, staff, copy)
        assert view["status"] == "processed" and view["requiere_revision"] is True and view["duplicado_de"] == first

        driver = browser()
        try:
            # Sign in: the queue opens on "por revisar", and the copy is there.
            sign_in(driver, base, staff)
            cookie = driver.get_cookie("ocr_sesion")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and staff not in cookie["value"]
            item = wait_listed(driver, copy)
            assert "Duplicado" in item.text and "Revisar" in item.text
            WebDriverWait(driver, WAIT).until(
                lambda d: d.find_element(By.CSS_SELECTOR, '.conteo[data-estado="todos"]').text == "2")

            # The receipt: image, boxes over the words, the 16 fields, the earlier receipt beside it.
            item.click()
            WebDriverWait(driver, WAIT).until(lambda d: d.execute_script(
                "var i = document.getElementById('imagen'); return i.complete && i.naturalWidth > 0;"))
            found = check_boxes(driver, view)
            assert len(driver.find_elements(By.CSS_SELECTOR, "#campos tbody tr")) == 16
            missing = [name for name, d in view["result"]["campos_detalle"].items() if d.get("valor") is None]
            for name in missing[:3]:
                row = driver.find_element(By.CSS_SELECTOR, f'#campos tr[data-campo="{name}"]')
                assert row.find_element(By.CSS_SELECTOR, ".motivo").text  # the reason for the null
            WebDriverWait(driver, WAIT).until(lambda d: d.find_element(By.ID, "anterior").is_displayed()
                                              and "Ana Pérez" in d.find_element(By.ID, "anterior-datos").text)
            assert "sorteo" in driver.find_element(By.ID, "anterior-datos").text.lower()
            # Issue 23: the banner says why in words, and no machine word shows (posible_reutilizacion, NaN...).
            shown = driver.find_element(By.ID, "recibo").text
            assert "misma imagen que el comprobante #" in driver.find_element(By.ID, "motivo-revision").text
            assert not re.findall(r"\b[a-z]+_[a-z_]+\b|NaN|undefined|null", shown), shown
            # Hovering a field lights its box, and the other way round.
            field = next(iter(found))
            ActionChains(driver).move_to_element(driver.find_element(By.CSS_SELECTOR, f'#campos tr[data-campo="{field}"]')).perform()
            assert "resaltado" in driver.find_element(By.CSS_SELECTOR, f'.caja[data-campo="{field}"]').get_attribute("class")
            def overlaps(a, b):
                return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
            # A box no other box covers (two fields can be read from one word, e.g. the brand).
            other = next(name for name, box in reversed(list(found.items()))
                         if not any(overlaps(box, b) for n, b in found.items() if n != name))
            ActionChains(driver).move_to_element(driver.find_element(By.CSS_SELECTOR, f'.caja[data-campo="{other}"]')).perform()
            assert "resaltado" in driver.find_element(By.CSS_SELECTOR, f'#campos tr[data-campo="{other}"]').get_attribute("class")
            screenshot(driver, tmp_path, "review-recibo.png")
            # Zoom keeps the boxes on their words.
            driver.find_element(By.ID, "zoom-mas").click()
            driver.find_element(By.ID, "zoom-mas").click()
            check_boxes(driver, view)
            driver.find_element(By.ID, "zoom-ajustar").click()

            # Edit in place: the API's error next to the field, then a value the API stores.
            # (Typed over the selection, as a person does: clear() would blur and save an empty field.)
            monto = driver.find_element(By.ID, "campo-monto")
            monto.send_keys(Keys.CONTROL, "a")
            monto.send_keys("doce bolívares", Keys.ENTER)
            WebDriverWait(driver, WAIT).until(lambda d: d.find_element(By.ID, "error-monto").text.strip())
            assert requests.get(f"{base}/api/uploads/{copy}", headers=keyed(staff), timeout=30).json()[
                "upload"]["result"]["extracted_fields"]["monto"] == view["result"]["extracted_fields"]["monto"]
            monto = driver.find_element(By.ID, "campo-monto")
            monto.send_keys(Keys.CONTROL, "a")
            monto.send_keys("1.234,56", Keys.ENTER)
            WebDriverWait(driver, WAIT).until(lambda d: requests.get(
                f"{base}/api/uploads/{copy}", headers=keyed(staff), timeout=30).json()["upload"]["result"]["extracted_fields"]["monto"]
                == "1234.56")
            WebDriverWait(driver, WAIT).until(lambda d: d.execute_script(
                "var i = document.getElementById('campo-monto'); return i && i.value;") == "1.234,56")

            # Keyboard: "e" goes to a field to edit, Esc leaves it; "j"/"k" walk the queue.
            driver.execute_script("document.activeElement.blur();")
            ActionChains(driver).send_keys("e").perform()
            assert driver.execute_script("return document.activeElement.id;").startswith("campo-")
            ActionChains(driver).send_keys(Keys.ESCAPE).perform()
            assert driver.execute_script("return document.activeElement.tagName;") == "BODY"

            # Approve with a note, by keyboard: it leaves "por revisar" and shows under "aprobados".
            driver.find_element(By.ID, "nota").send_keys("Copia del mismo pago, verificada")
            driver.execute_script("document.activeElement.blur();")
            ActionChains(driver).send_keys("a").perform()
            # Not reconciled (no statement yet): the desk asks first.
            WebDriverWait(driver, WAIT).until(lambda d: d.find_element(By.ID, "confirmar").is_displayed())
            driver.find_element(By.ID, "confirmar-si").click()
            WebDriverWait(driver, WAIT).until(lambda d: requests.get(
                f"{base}/api/uploads/{copy}", headers=keyed(staff), timeout=30).json()["upload"]["review"]["estado"] == "aprobado")
            review = requests.get(f"{base}/api/uploads/{copy}", headers=keyed(staff), timeout=30).json()["upload"]["review"]
            assert review["nota"] == "Copia del mismo pago, verificada"
            choose_state(driver, "aprobado")
            wait_listed(driver, copy)
            choose_state(driver, "revisar")
            wait_listed(driver, copy, present=False)

            # A new upload appears without reloading the page.
            choose_state(driver, "todos")
            wait_listed(driver, first)
            fresh = upload(base, staff, generate_receipt(RECEIPT_SEED + 8, variant="clean"), "nuevo.png", nombre="Rosa",
                           numerosorteo="A", fechasorteo="20250711")
            wait_listed(driver, fresh)
            processed(base, staff, fresh)
            # ...and its row follows it from "en proceso" to read, still without reloading.
            WebDriverWait(driver, WAIT).until(lambda d: d.execute_script(
                "var i = document.getElementById(arguments[0]); return i && i.textContent.indexOf('En proceso') < 0 "
                "&& i.textContent.indexOf('sin monto') < 0;", f"item-{fresh}"))
            driver.execute_script("document.activeElement.blur();")
            ActionChains(driver).send_keys("j").perform()  # from the copy to the receipt below it
            WebDriverWait(driver, WAIT).until(lambda d: "activo" in d.find_element(By.ID, f"item-{first}").get_attribute("class"))
            ActionChains(driver).send_keys("k").perform()
            WebDriverWait(driver, WAIT).until(lambda d: "activo" in d.find_element(By.ID, f"item-{copy}").get_attribute("class"))
            WebDriverWait(driver, WAIT).until(lambda d: d.execute_script(
                "var i = document.getElementById('anterior-imagen'); return !i.hidden && i.complete && i.naturalWidth > 0 "
                "&& document.getElementById('imagen').complete;"))
            driver.execute_script("document.getElementById('recibo').scrollTop = 0;")
            screenshot(driver, tmp_path, "review-cola.png")

            # Reject the new one with a note: the "r" key, then the rejected filter lists it.
            wait_listed(driver, fresh).click()
            WebDriverWait(driver, WAIT).until(lambda d: d.find_element(By.ID, "recibo-titulo").text.startswith(f"#{fresh}"))
            driver.find_element(By.ID, "nota").send_keys("Monto no coincide con el banco")
            driver.execute_script("document.activeElement.blur();")
            ActionChains(driver).send_keys("r").perform()
            WebDriverWait(driver, WAIT).until(lambda d: requests.get(
                f"{base}/api/uploads/{fresh}", headers=keyed(staff), timeout=30).json()["upload"]["review"]["estado"] == "rechazado")
            choose_state(driver, "rechazado")
            wait_listed(driver, fresh)
            choose_state(driver, "todos")
            wait_listed(driver, copy).click()

            # The export link carries the filter and answers CSV for this session.
            href = driver.find_element(By.ID, "exportar").get_attribute("href")
            assert "estado=todos" in href
            session = requests.Session()
            session.cookies.set("ocr_sesion", driver.get_cookie("ocr_sesion")["value"])
            exported = session.get(href, timeout=30)
            assert exported.status_code == 200 and exported.headers["Content-Type"].startswith("text/csv"), exported.text[:300]

            # CSRF: the page's own calls without the token, and a form post without it, are refused.
            token = driver.find_element(By.CSS_SELECTOR, 'meta[name="csrf-token"]').get_attribute("content")
            assert fetch_status(driver, "POST", f"/api/uploads/{copy}/review", {"Content-Type": "application/json"}) == \
                [403, "csrf_failed"]
            assert fetch_status(driver, "PATCH", f"/api/uploads/{copy}/fields",
                                {"Content-Type": "application/json", "X-CSRF-Token": "forged"}) == [403, "csrf_failed"]
            assert session.post(f"{base}/review/logout", timeout=30, allow_redirects=False).status_code == 403
            assert session.post(f"{base}/review/logout", data={"csrf_token": token}, timeout=30,
                                allow_redirects=False).status_code == 302

            # A phone-sized window: one column, the receipt opens over the queue and goes back.
            driver.set_window_size(390, 844)
            sign_in(driver, base, staff)
            choose_state(driver, "todos")
            wait_listed(driver, copy).click()
            WebDriverWait(driver, WAIT).until(lambda d: d.find_element(By.ID, "recibo").is_displayed())
            assert not driver.find_element(By.ID, "lista").is_displayed()
            assert driver.find_element(By.ID, "imagen").rect["width"] <= 390
            screenshot(driver, tmp_path, "review-telefono.png")
            driver.find_element(By.ID, "volver").click()
            assert driver.find_element(By.ID, "lista").is_displayed()
            driver.set_window_size(1440, 1000)

            # Reconciliation: a statement crediting a payment; its receipt's view shows the credit.
            # The receipts no statement covers show their state too.
            paid_receipt = generate_receipt(PAID_SEED, variant="clean")
            paid = upload(base, staff, paid_receipt, "pagado.png", nombre="Carla")
            processed(base, staff, paid)
            statement = statement_for_receipts("bnc_tsv", [{"id": "pagado", **paid_receipt.fields}])
            answer = requests.post(f"{base}/api/statements", headers=keyed(staff), timeout=120,
                                   files={"file": (statement.filename, with_markup_in_descriptions(statement.data))})
            assert answer.status_code == 201, answer.text
            check_reconciliation(driver, base, staff, paid)
            screenshot(driver, tmp_path, "review-conciliacion.png")
            wait_listed(driver, first).click()
            WebDriverWait(driver, WAIT).until(lambda d: d.find_element(By.ID, "recibo-titulo").text.startswith(f"#{first}"))
            assert driver.find_element(By.ID, "conciliacion-estado").text == "Pendiente"

            # A second tenant's key sees none of it, even by asking for the id.
            sign_in(driver, base, stranger)
            choose_state(driver, "todos")
            WebDriverWait(driver, WAIT).until(lambda d: d.find_element(By.ID, "lista-vacia").is_displayed())
            assert driver.find_element(By.CSS_SELECTOR, '.conteo[data-estado="todos"]').text == "0"
            assert driver.execute_async_script(
                "var done = arguments[arguments.length - 1];"
                "fetch('/api/uploads/' + arguments[0], {credentials: 'same-origin'}).then(function (r) { done(r.status); });",
                copy) == 404
            driver.get(f"{base}/review#recibo={copy}")
            WebDriverWait(driver, WAIT).until(lambda d: "No se puede abrir" in d.find_element(By.ID, "nuevos").text)
            assert not driver.find_element(By.ID, "recibo").is_displayed()
            assert "Ana" not in driver.find_element(By.TAG_NAME, "body").text
        finally:
            driver.quit()
        assert (tmp_path / "screenshots" / "review-cola.png").stat().st_size > 10_000
