"""The published contract: /api/openapi.json is a valid OpenAPI 3.1 document that declares every
route of the API, its inputs are checked from the same declarations (answering the service's own
error envelope), and /api/docs works offline (its assets come from an installed package).

tests/test_openapi_fuzz.py drives the real service with the document (schemathesis).
"""
import re

import pytest
from flask import Blueprint, request
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from pydantic import BaseModel, Field

from api.auth import PUBLIC_PATHS
from api.errors import ok
from api.openapi import endpoint
from api.schemas import Success

KEY = "k3y-Openapi-5c1d9e7a3f"
DOCS_RULES = {"/api/openapi.json", "/api/docs"}

# An endpoint declared the way another branch adds one (registered only on the app of one test).
probe = Blueprint("probe", __name__)


class ProbeHeaders(BaseModel):
    idempotency_key: str = Field(alias="Idempotency-Key", min_length=8, max_length=64)


class ProbeOut(Success):
    seen: str


@probe.post("/api/probe")
@endpoint("A header-checked probe", headers=ProbeHeaders, ok=ProbeOut, errors={409: "already_seen"})
def probe_view():
    return ok({"seen": request.headers["Idempotency-Key"]})


@pytest.fixture
def document(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.get_json()


def openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule)


def test_the_document_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1")
    validate(document, cls=OpenAPIV31SpecValidator)


def test_every_route_of_the_api_is_declared(app, document):
    """A new endpoint without `@endpoint(...)` under its route decorator fails here."""
    expected = set()
    for rule in app.url_map.iter_rules():
        if not (rule.rule.startswith("/api") or rule.rule == "/metrics") or rule.rule.startswith("/api/docs/") \
                or rule.rule in DOCS_RULES:
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            expected.add((method.lower(), openapi_path(rule.rule)))
    declared = {(method, path) for path, operations in document["paths"].items() for method in operations}
    assert expected - declared == set(), "routes without a declaration"
    assert declared - expected == set(), "declarations without a route"
    assert len(declared) >= 20


def test_every_operation_declares_its_errors_with_the_envelope(document):
    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            public = operation.get("security") == []
            assert public == (path in PUBLIC_PATHS), (method, path)
            expected = {"400", "500", "503", "414", "431"} | ({"401"} if not public else set())
            assert expected <= set(responses), (method, path, sorted(responses))
            for status, answer in responses.items():
                if int(status) >= 400 and status not in ("414", "431") and not public:
                    assert answer["content"]["application/json"]["schema"] == envelope, (method, path, status)
            if "requestBody" in operation:
                assert "413" in responses, (method, path)
            assert operation["summary"] and operation["operationId"]
    schemes = document["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {"type": "apiKey", "name": "X-API-Key", "in": "header"}
    assert schemes["Bearer"]["type"] == "http" and schemes["Bearer"]["scheme"] == "bearer"
    assert schemes["Session"] == {"type": "apiKey", "name": "ocr_sesion", "in": "cookie",
                                  "description": schemes["Session"]["description"]}
    assert schemes["Csrf"]["name"] == "X-CSRF-Token" and schemes["Csrf"]["in"] == "header"
    assert document["security"] == [{"ApiKey": []}, {"Bearer": []}, {"Session": []}]
    # A change made with the session cookie needs its CSRF token too.
    assert {"Session": [], "Csrf": []} in document["paths"]["/api/uploads/{upload_id}/fields"]["patch"]["security"]
    assert "csrf_failed" in document["paths"]["/api/uploads/{upload_id}/review"]["post"]["responses"]["403"]["description"]
    parameters = document["paths"]["/api/uploads/{upload_id}"]["get"]["parameters"]
    assert {(p["name"], p["in"]) for p in parameters if "tenant" in p["name"].lower()} == {("X-Tenant", "header"),
                                                                                         ("tenant", "query")}
    assert "403" in document["paths"]["/api/clean"]["post"]["responses"]
    assert "429" in document["paths"]["/api/upload"]["post"]["responses"]


def test_the_document_and_the_docs_need_no_key(make_app):
    client = make_app(API_KEYS=[KEY]).test_client()
    assert client.get("/api/status").status_code == 401
    assert client.get("/api/openapi.json").status_code == 200
    assert client.get("/api/docs").status_code == 200


def test_the_docs_page_loads_nothing_from_the_network(client):
    page = client.get("/api/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert not re.search(r"(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html), "an outside URL in the page"
    assert "<script>" not in html  # no inline script: the policy below allows 'self' only
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy and "http" not in policy
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert {"/api/docs/swagger-ui-bundle.js", "/api/docs/swagger-ui.css", "/api/docs/docs.js"} <= set(assets)
    for asset in assets:
        answer = client.get(asset)
        assert answer.status_code == 200 and len(answer.get_data()) > 100, asset
    bundle = client.get("/api/docs/swagger-ui-bundle.js").get_data(as_text=True)
    assert "SwaggerUIBundle" in bundle
    init = client.get("/api/docs/docs.js").get_data(as_text=True)
    assert "validatorUrl: null" in init and "http" not in init
    # Everything else keeps the strict policy.
    assert client.get("/api/status").headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"


@pytest.mark.parametrize("method,path,kwargs,field", [
    ("get", "/api/files/pending?limit=abc", {}, "limit"),
    ("get", "/api/files/processed?limit=1001", {}, "limit"),
    ("get", f"/api/files/pending?cursor={'x' * 65}", {}, "cursor"),
    ("get", "/api/extract_results?request_id=BATCH_1", {}, "request_id"),
    ("get", "/api/metrics?format=xml", {}, "format"),
    ("post", "/api/clean", {"json": {"retention_hours": "abc"}}, "retention_hours"),
    ("post", "/api/ocr/process_batch", {"json": {"include_coordinates": "yes"}}, "include_coordinates"),
])
def test_declared_inputs_are_checked_with_the_service_envelope(client, method, path, kwargs, field):
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == 400
    body = response.get_json()
    assert set(body) == {"success", "error"} and body["success"] is False
    error = body["error"]
    assert error["code"] == "invalid_parameter" and error["message"] and error["request_id"]
    assert error["details"]["field"] == field
    assert error["details"]["errors"][0]["field"] == field


def test_a_field_of_a_body_can_name_its_own_error_code(client):
    response = client.post("/api/ocr/process_batch", json={"profile": "no_such_profile"})
    body = response.get_json()
    assert response.status_code == 400 and body["error"]["code"] == "unknown_profile"
    assert body["error"]["details"]["field"] == "profile"


def test_admin_endpoints_refuse_client_keys_before_reading_input(make_app):
    from service.access import create_key

    app = make_app()
    client_key, _ = create_key(app.extensions["ocr_runtime"].db, "acme")
    client = app.test_client()
    # A malformed body from a client key: 403 (the key may not), not 400 (what was wrong with it).
    response = client.post("/api/clean", json={"retention_hours": "abc"}, headers={"X-API-Key": client_key})
    assert response.status_code == 403 and response.get_json()["error"]["code"] == "forbidden"


def test_in_tests_an_answer_that_drifts_from_its_declaration_is_an_error(app, monkeypatch):
    """The test apps check every declared JSON answer: a view that answers a shape or status
    its declaration does not have fails loudly instead of publishing a wrong document."""
    from api import ops

    client = app.test_client()
    assert client.get("/api/health/live").status_code == 200
    monkeypatch.setattr(ops, "utcnow", lambda: None)  # "timestamp": null, declared as a string
    response = client.get("/api/health/live")
    assert response.status_code == 500 and response.get_json()["error"]["code"] == "internal_error"


def test_a_new_endpoint_is_documented_and_its_headers_checked(make_app):
    app = make_app()
    app.register_blueprint(probe)
    client = app.test_client()
    operation = client.get("/api/openapi.json").get_json()["paths"]["/api/probe"]["post"]
    header = next(p for p in operation["parameters"] if p["in"] == "header")
    assert header["name"] == "Idempotency-Key" and header["required"] is True
    assert {"200", "400", "401", "409", "500", "503"} <= set(operation["responses"])
    missing = client.post("/api/probe")
    assert missing.status_code == 400 and missing.get_json()["error"]["details"]["field"] == "Idempotency-Key"
    assert client.post("/api/probe", headers={"Idempotency-Key": "short"}).status_code == 400
    answer = client.post("/api/probe", headers={"Idempotency-Key": "abcdefgh-1"})
    assert answer.status_code == 200 and answer.get_json() == {"success": True, "seen": "abcdefgh-1"}


def test_each_app_documents_its_own_routes(client, make_app):
    """The probe above lives on its own app only: the document is built per app, not per process."""
    other = make_app()
    other.register_blueprint(probe)
    assert "/api/probe" in other.test_client().get("/api/openapi.json").get_json()["paths"]
    document = client.get("/api/openapi.json").get_json()
    assert "/api/probe" not in document["paths"]
    validate(document, cls=OpenAPIV31SpecValidator)  # nested models too, however many apps built one


@pytest.mark.parametrize("upload_id", ["9223372036854775807", "9223372036854775808", "202835604902906149762864735740066004992"])
def test_an_id_past_any_row_is_not_found(client, upload_id):
    """Found by the fuzzer: a path id past 64 bits overflowed SQLite's bind (500); routing now refuses it."""
    response = client.post(f"/api/uploads/{upload_id}/retry")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"


def test_an_unencodable_bad_value_still_gets_the_envelope(client):
    """Found by tests/test_fuzz.py: "\\ud800" decodes to a lone surrogate that no JSON answer can
    carry; the 400 names the field and leaves the value out."""
    response = client.post("/api/ocr/process_batch", data=b'{"profile": "' + b"\\ud800" * 100 + b'"}',
                           content_type="application/json")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "unknown_profile" and error["details"]["field"] == "profile"
    assert "ud800" not in response.get_data(as_text=True)


def test_the_follow_webhook_and_statement_contract_is_documented(document):
    """The contract's additions (follow, webhooks, recon) as a client reads them from the document."""
    paths = document["paths"]
    upload = paths["/api/upload"]["post"]
    header = next(p for p in upload["parameters"] if p["name"] == "Idempotency-Key")
    assert header["in"] == "header" and header["required"] is False
    assert {"409", "422"} <= set(upload["responses"]) and "callback_not_allowed" in upload["responses"]["400"]["description"]
    form = document["components"]["schemas"]["UploadForm"]["properties"]
    assert "callback_url" in form
    assert "status_url" in document["components"]["schemas"]["UploadedFile"]["required"]
    extract = paths["/api/extract_results"]["get"]
    assert {"text/csv", "application/x-ndjson", "application/json"} <= set(extract["responses"]["200"]["content"])
    assert "X-Next-Cursor" in extract["responses"]["200"]["headers"]
    names = {p["name"] for p in extract["parameters"]}
    assert {"format", "revision", "requiere_revision", "conciliacion", "cursor", "limit"} <= names
    image = paths["/api/uploads/{upload_id}/image"]["get"]["responses"]["200"]["content"]
    assert {"image/png", "image/jpeg"} <= set(image)
    fields = paths["/api/uploads/{upload_id}/fields"]["patch"]["responses"]
    assert "invalid_field" in fields["400"]["description"] and "not_processed" in fields["409"]["description"]
    assert "403" in paths["/api/webhooks/config"]["put"]["responses"]
    assert "409" in paths["/api/webhooks/deliveries/{delivery_id}/resend"]["post"]["responses"]
    assert "201" in paths["/api/statements"]["post"]["responses"]
    assert "text/csv" in paths["/api/review_queue"]["get"]["responses"]["200"]["content"]
    metrics = document["components"]["schemas"]["MetricsOut"]["properties"]
    assert "corrections" in metrics
    for path in ("/api/uploads/{upload_id}", "/api/review_queue/counts", "/api/webhooks/deliveries",
                 "/api/conciliacion/resumen", "/api/conciliacion/no_conciliados", "/api/statements/{statement_id}/movements"):
        assert "get" in paths[path], path


def test_an_idempotency_key_is_checked_before_the_upload_is_read(client):
    response = client.post("/api/upload", headers={"Idempotency-Key": "é" * 3})
    assert response.status_code == 400
    assert response.get_json()["error"]["details"]["field"] == "Idempotency-Key"
