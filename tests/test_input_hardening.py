"""Issue 21 item 6, the small ones: control characters refused on every text input (both
databases), ASCII digits only in statement amounts, 6to4/NAT64/special-purpose addresses refused
for webhooks, an upload's callback_url resolved when it is uploaded."""
import io

import pytest
from sqlalchemy import func, select

from database import Review, Upload
from reconciliation.values import parse_amount, parse_date
from service.webhook_targets import refusal
from tests.test_corrections import finished
from tests.test_tenants import ADMIN_KEY, image_bytes, keyed
from tests.test_webhooks import configure

CONTROL = ["\x00", "\x01", "\x1b", "\x7f"]


@pytest.mark.parametrize("character", CONTROL, ids=[f"U+{ord(c):04X}" for c in CONTROL])
def test_control_characters_are_refused_with_400_on_every_text_input(make_app, character):
    app = make_app(API_KEYS=[ADMIN_KEY])
    rt = app.extensions["ocr_runtime"]
    client = app.test_client()
    upload_id = finished(rt, "n.png")
    bad = f"Ana{character}Pérez"

    def refused(answer, what):
        assert answer.status_code == 400, (what, answer.status_code, answer.get_data()[:200])
        assert answer.get_json()["error"]["code"] == "invalid_parameter", what

    refused(client.post(f"/api/uploads/{upload_id}/review", headers=keyed(ADMIN_KEY),
                        json={"estado": "rechazado", "nota": bad}), "nota")
    refused(client.get(f"/api/review_queue?q={bad}", headers=keyed(ADMIN_KEY)), "queue q")
    refused(client.get(f"/api/review_queue?numerosorteo={bad}", headers=keyed(ADMIN_KEY)), "queue numerosorteo")
    refused(client.get(f"/api/review_queue/counts?fechasorteo={bad}", headers=keyed(ADMIN_KEY)), "counts")
    metadata = client.post("/api/upload", headers=keyed(ADMIN_KEY), content_type="multipart/form-data",
                           data={"nombre": bad, "files": [(io.BytesIO(image_bytes(1)), "r.png")]})
    assert metadata.status_code == 400 and metadata.get_json()["error"]["code"] == "invalid_metadata"
    refused(client.post("/api/upload", headers=keyed(ADMIN_KEY), content_type="multipart/form-data",
                        data={"nombre": "Ana", "callback_url": f"https://a.example/{character}",
                              "files": [(io.BytesIO(image_bytes(4)), "r.png")]}), "callback_url")
    refused(client.post("/api/upload", headers=keyed(ADMIN_KEY), content_type="multipart/form-data",
                        data={"nombre": "Ana", "files": [(io.BytesIO(image_bytes(2)), f"r{character}.png")]}), "filename")
    refused(client.patch(f"/api/uploads/{upload_id}/fields", headers=keyed(ADMIN_KEY), json={"concepto": bad}),
            "correction")
    with rt.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Upload)) == 1  # nothing stored
        assert session.scalar(select(func.count()).select_from(Review)) == 0
    # The same texts without the character are fine.
    ok = client.post(f"/api/uploads/{upload_id}/review", headers=keyed(ADMIN_KEY),
                     json={"estado": "rechazado", "nota": "Ana Pérez\nilegible\t(2)"})
    assert ok.status_code == 200, ok.get_json()


def test_statement_amounts_and_dates_take_ascii_digits_only():
    assert parse_amount("1.136,52", ",") == parse_amount("1136,52", ",")
    for text in ("١٢٣,٤٥", "١٢٣", "１２３,45", "۱۲۳,۴۵", "१२३,४५"):
        with pytest.raises(ValueError):
            parse_amount(text, ",")
    with pytest.raises(ValueError):
        parse_date("٠٥/٠٣/٢٠٢٥", ["%d/%m/%Y"])
    assert parse_date("05/03/2025", ["%d/%m/%Y"])[0].isoformat() == "2025-03-05"


@pytest.mark.parametrize("address", [
    "2002:7f00:1::", "2002:c000:8::1", "2002:a00:1::", "2002:a9fe:a9fe::",  # 6to4 of 127.0.0.1, 192.0.0.8, 10/8, metadata
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b::c0a8:1",  # NAT64 of loopback, metadata, 192.168/16
    "64:ff9b:1::808:808", "192.0.0.8", "192.0.0.170", "198.18.0.1", "100.64.0.1", "192.88.99.1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2", "::ffff:127.0.0.1", "240.0.0.1",
])
def test_transition_and_special_purpose_addresses_are_refused_for_webhooks(address):
    assert refusal(address) is not None


def test_public_addresses_stay_allowed_for_webhooks():
    for address in ("8.8.8.8", "2001:4860:4860::8888", "2002:808:808::", "64:ff9b::808:808"):
        assert refusal(address) is None, address


def test_webhook_registration_refuses_a_6to4_address_of_loopback(make_app):
    app = make_app(API_KEYS=[ADMIN_KEY])
    answer = app.test_client().put("/api/webhooks/config", headers=keyed(ADMIN_KEY),
                                   json={"url": "http://[2002:7f00:1::]:8080/hook"})
    assert answer.status_code == 400 and answer.get_json()["error"]["code"] == "callback_not_allowed"


def test_an_uploads_callback_url_is_resolved_when_uploaded(make_app):
    app = make_app(API_KEYS=[ADMIN_KEY])
    rt = app.extensions["ocr_runtime"]
    client = app.test_client()
    configure(client, ADMIN_KEY, url=None, allowed_hosts=["*.invalid", "2002:7f00:1::"])

    def upload(url, seed):
        return client.post("/api/upload", headers=keyed(ADMIN_KEY), content_type="multipart/form-data",
                           data={"callback_url": url, "files": [(io.BytesIO(image_bytes(seed)), "r.png")]})

    answer = upload("https://hooks.nowhere.invalid/pago", 5)
    assert answer.status_code == 400, answer.get_json()
    assert answer.get_json()["error"]["code"] == "callback_unresolvable"
    assert answer.get_json()["error"]["details"] == {"field": "callback_url"}
    answer = upload("http://[2002:7f00:1::]/pago", 6)
    assert answer.status_code == 400 and answer.get_json()["error"]["code"] == "callback_not_allowed"
    with rt.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Upload)) == 0
