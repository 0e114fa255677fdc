"""Declaring an endpoint: one decorator gives both its OpenAPI operation and its request validation.

`GET /api/openapi.json` and the page `GET /api/docs` (api/docs.py) are built from these
declarations (spectree over pydantic models), so the document cannot drift from what is checked.
tests/test_openapi.py fails for any route under /api that has no declaration.

How to declare an endpoint (models go in api/schemas.py or a new api/schemas_<topic>.py):

    from pydantic import BaseModel, Field
    from api.openapi import endpoint
    from api.schemas import Closed, PageQuery, Success

    class ThingQuery(PageQuery):               # query string; PageQuery brings cursor and limit
        estado: Literal["a", "b"] | None = None

    class ThingBody(BaseModel):                # JSON body; StrictBool/strict=True where the view is strict
        nota: str = Field("", max_length=500)

    class ThingOut(Success):                   # the 200 body {"success": true, ...}; Closed: no other keys
        thing: Thing

    @blueprint.post("/things/<int:thing_id>")  # the route decorator first, then the declaration
    @endpoint("Change one thing", query=ThingQuery, json=ThingBody, ok=ThingOut, errors={404: "No such thing"},
              admin=True)
    def change_thing(thing_id: int) -> Response:
        ...                                    # read request.args / json_body() as before

- `ok`: the success model, or {status: model} for several (e.g. {200: Done, 202: Accepted}); a
  status whose model is None has no JSON body. `media={200: ("text/csv",)}` adds non-JSON media
  types to a status (streams, metrics text; an image: `ok={200: None}, media={200: ("image/png", ...)}`).
- `headers=`: a model of request headers, fields aliased to the header's name as Werkzeug spells it
  (`Field(None, alias="Idempotency-Key")`).
- `errors`: the endpoint's own error statuses {status: description}, answered with the error
  envelope. Every endpoint also gets 400, 401 (unless public=True), 403 (admin=True, which also
  applies api.auth.admin_only, before validation), 413 (with a body), 429 (rate_limited=True),
  500, 503, and gunicorn's own 414/431 (text/html, before the application sees the request).
- An input that fails its model answers 400 `invalid_parameter` (or the code the model maps the
  field to in its `error_codes` class variable) with `details.field` and `details.errors`, before
  the view runs. JSON bodies are read with api.inputs.json_body (malformed: 400 malformed_json).
  Form bodies (`form=`) are documented only: the view checks them, multipart limits included.
- Under Flask's TESTING (the test apps) every JSON answer of a view is checked against its declared
  model, and an undeclared status or a mismatch becomes a 500: tests catch a drifting document.
"""
from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from flask import Response, current_app, request
from pydantic import BaseModel, ValidationError
from spectree import Response as Responses
from spectree import SecurityScheme, SpecTree
from spectree.models import InType, SecureType, SecuritySchemeData
from spectree.plugins.base import Context
from spectree.plugins.flask_plugin import FlaskPlugin
from spectree.utils import get_multidict_items

from api.auth import admin_only
from api.browser_session import COOKIE_NAME, CSRF_HEADER
from api.errors import ApiError
from api.inputs import MAX_ROW_ID, TENANT_HEADER, json_body
from api.schemas import ErrorEnvelope

TITLE = "Sistema OCR Empresarial Asíncrono"
DESCRIPTION = (
    "Reads screenshots of Venezuelan payment receipts. Every answer is JSON with `success`; every "
    "error is `{\"success\": false, \"error\": {\"code\", \"message\", \"request_id\", \"details\"?}}`. "
    "A key goes in `X-API-Key` or `Authorization: Bearer`; a deployment without keys is open. "
    "Lists are paged: pass `next_cursor` back as `cursor`."
)
GUNICORN_REFUSALS = {414: "Request line too long (refused by gunicorn, HTML body)",
                     431: "Request headers too large (refused by gunicorn, HTML body)"}
DEFAULT_ERRORS = {
    400: "Malformed input (invalid_parameter, malformed_json, malformed_body or the endpoint's own code)",
    500: "internal_error",
    503: "database_unavailable or storage_unavailable; retry after Retry-After seconds",
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}}
SAFE_METHODS = {"get", "head", "options"}
# An admin acts on another tenant's data by naming it (api/inputs.py tenant_id()); a client key may not.
TENANT_PARAMETER = {"name": TENANT_HEADER, "in": "header", "required": False, "schema": {"type": "string"},
                    "description": "Admin keys only: act on this tenant's data (a client key gets 403 forbidden, "
                                   "an unknown name 404 tenant_not_found)"}
# The same choice as a query parameter, for links (the review desk's image and file URLs).
TENANT_QUERY_PARAMETER = {"name": "tenant", "in": "query", "required": False, "schema": {"type": "string"},
                          "description": f"Admin keys only: the same as {TENANT_HEADER} (the header wins when both are sent)"}
TENANT_ERRORS = {403: "forbidden: a client key named a tenant (X-Tenant or ?tenant=)",
                 404: "tenant_not_found: X-Tenant or ?tenant= names no tenant"}
CSRF_ERROR = "csrf_failed: signed in with the review desk's session cookie, but without its X-CSRF-Token"


@dataclass
class Declaration:
    """What spectree does not model itself: applied to the generated document by `document()`."""
    summary: str
    public: bool
    media: dict[int, tuple[str, ...]] = field(default_factory=dict)
    answer_headers: dict[int, dict[str, str]] = field(default_factory=dict)


_declarations: dict[str, Declaration] = {}
_generating = threading.Lock()
_model_names: dict[str, Any] = {}


def _model_name(model: Any) -> str:
    """Components are named after their class; two different models may not share a name."""
    name = getattr(model, "__name__", None) or repr(model)
    known = _model_names.setdefault(name, model)
    if known is not model:
        raise TypeError(f"Two response/request models are named {name}: rename one")
    return name


class _Plugin(FlaskPlugin):
    """spectree's Flask plugin with our request reading and no response rewriting."""

    def request_validation(self, req, query, json, form, headers, cookies):
        has_body = req.method not in ("GET", "DELETE", "HEAD")
        body = json_body() if json is not None and has_body and req.mimetype not in self.FORM_MIMETYPE else None
        adapter = self.model_adapter
        try:
            req.context = Context(
                adapter.validate_obj(query, get_multidict_items(req.args, query)) if query else None,
                adapter.validate_obj(json, body) if body is not None else None,
                None,
                adapter.validate_obj(headers, dict(iter(req.headers))) if headers else None,
                None,
            )
        except ValidationError as error:
            # Answered here, in our envelope: spectree's own handling serializes the inputs first.
            raise invalid_input(error, (query, json, headers)) from None

    def validate_response(self, resp, resp_model, skip_validation, force_resp_serialize):
        # Never re-serialize or buffer: streamed bodies must stay streams.
        response = current_app.make_response(resp)
        if current_app.config.get("TESTING") and resp_model is not None:
            check_response(response, resp_model)
        return response, None


def check_response(response: Response, declared: Responses) -> None:
    """A view's answer against its declaration (tests only): undeclared statuses and JSON mismatches raise."""
    status = response.status_code
    if f"HTTP_{status}" not in declared.codes and declared.find_model(status) is None:
        raise AssertionError(f"{request.method} {request.path} answered {status}, which is not declared")
    model = declared.find_model(status)
    if model is None or response.is_streamed or response.mimetype != "application/json":
        return
    try:
        model.model_validate_json(response.get_data())
    except ValidationError as exc:
        raise AssertionError(f"{request.method} {request.path} {status} does not match {model.__name__}: {exc}") from None


def invalid_input(error: ValidationError, models: tuple[Any, ...]) -> ApiError:
    """A pydantic error as the service's 400: the first field in `details.field`, all of them in `details.errors`."""
    codes: dict[str, str] = {}
    for model in models:
        codes.update(getattr(model, "error_codes", {}))
    # No input values: they may be huge or not even encodable (lone surrogates from JSON "\ud800").
    found = error.errors(include_url=False, include_input=False, include_context=False)
    problems = [{"field": _text(".".join(str(part) for part in e["loc"])) or None, "message": _text(e["msg"]), "type": e["type"]}
                for e in found]
    first = problems[0]
    name = _text(str(found[0]["loc"][0])) if found[0]["loc"] else None
    message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
    return ApiError(400, codes.get(name or "", "invalid_parameter"), message, details={"field": name, "errors": problems})


def _text(value: str) -> str:
    return value.encode("utf-8", "replace").decode("utf-8")


spec = SpecTree(
    backend=_Plugin,
    title=TITLE,
    description=DESCRIPTION,
    version="1.0.0",
    # The documents' own routes live under api/docs; "strict": only declared views are documented.
    path="api/docs",
    mode="strict",
    annotations=False,
    validation_error_status=400,
    validation_error_model=ErrorEnvelope,
    naming_strategy=_model_name,
    nested_naming_strategy=lambda _parent, child: child,
    security_schemes=[
        SecurityScheme(name="ApiKey", data=SecuritySchemeData(type=SecureType.API_KEY, name="X-API-Key",
                                                              field_in=InType.HEADER)),
        SecurityScheme(name="Bearer", data=SecuritySchemeData(type=SecureType.HTTP, scheme="bearer",
                                                              description="The same key as Authorization: Bearer <key>")),
        # The review desk's way in (api/browser_session.py): POST /review/login exchanges a key for this
        # cookie; a request that changes something must then repeat the session's CSRF token.
        SecurityScheme(name="Session", data=SecuritySchemeData(
            type=SecureType.API_KEY, name=COOKIE_NAME, field_in=InType.COOKIE,
            description="The review desk's signed session cookie (sign in at /review/login); acts as its key")),
        SecurityScheme(name="Csrf", data=SecuritySchemeData(
            type=SecureType.API_KEY, name=CSRF_HEADER, field_in=InType.HEADER,
            description="The session's CSRF token, required with the session cookie on POST/PUT/PATCH/DELETE")),
    ],
    security=[{"ApiKey": []}, {"Bearer": []}, {"Session": []}],
)


def endpoint(summary: str, *, ok: Any = None, query: type[BaseModel] | None = None, json: type[BaseModel] | None = None,
             form: type[BaseModel] | None = None, headers: type[BaseModel] | None = None,
             errors: Mapping[int, str] | None = None, media: Mapping[int, tuple[str, ...]] | None = None,
             admin: bool = False, public: bool = False, rate_limited: bool = False,
             tag: str | None = None, answer_headers: Mapping[int, dict[str, str]] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare the view below the route decorator; see the module docstring."""
    successes: dict[int, Any] = ok if isinstance(ok, dict) else {200: ok}
    statuses: dict[int, tuple[Any, str]] = {}
    for status, model in successes.items():
        statuses[status] = (model, "Success" if status < 300 else "Answer")
    own = {**DEFAULT_ERRORS, **(errors or {})}
    if not public:
        own.setdefault(401, "unauthorized: no valid API key (X-API-Key or Authorization: Bearer)")
        for status, description in TENANT_ERRORS.items():
            own[status] = f"{own[status]}; or {description}" if status in own else description
    if admin:
        own[403] = f"forbidden: the key is not an admin key; {own[403]}"
    if json is not None or form is not None:
        own.setdefault(413, "request_too_large (or the endpoint's own size codes)")
    if rate_limited:
        own.setdefault(429, "rate_limited: retry after Retry-After seconds")
    for status, description in own.items():
        statuses.setdefault(status, (ErrorEnvelope, description))

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        operation_id = f"{view.__module__.rsplit('.', 1)[-1]}_{view.__name__}"
        if operation_id in _declarations:
            raise TypeError(f"{operation_id} is declared twice")
        responses = Responses(*(f"HTTP_{s}" for s, (m, _d) in statuses.items() if m is None),
                              **{f"HTTP_{s}": (m, d) for s, (m, d) in statuses.items() if m is not None})
        for status, (model, description) in statuses.items():
            if model is None:
                responses.code_descriptions[f"HTTP_{status}"] = description
        validated = spec.validate(
            query=query, json=json, form=form, headers=headers, resp=responses,
            tags=(tag or view.__module__.rsplit(".", 1)[-1],),
            security={} if public else None,
            operation_id=operation_id,
        )(view)
        _declarations[operation_id] = Declaration(summary, public, dict(media or {}), dict(answer_headers or {}))
        return admin_only(validated) if admin else validated
    return decorate


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the current app (built once per process: routes do not change)."""
    cached = current_app.extensions.get("openapi_document")
    if cached is not None:
        return cached
    # Generated for this app's routes (spectree's own cache would keep the first app's for every
    # app). Generating moves nested models out of spec.models, so each run works on a copy.
    with _generating:
        models = spec.models
        spec.models = copy.deepcopy(models)
        try:
            generated = spec._generate_spec()
        finally:
            spec.models = models
    for operations in generated["paths"].values():
        for method, operation in operations.items():
            _complete(method, operation, _declarations[operation["operationId"]])
    current_app.extensions["openapi_document"] = generated
    return generated


def _complete(method: str, operation: dict[str, Any], declared: Declaration) -> None:
    operation["summary"] = declared.summary
    if not declared.public:
        operation.setdefault("parameters", []).extend([dict(TENANT_PARAMETER), dict(TENANT_QUERY_PARAMETER)])
        if method not in SAFE_METHODS:
            operation["security"] = [{"ApiKey": []}, {"Bearer": []}, {"Session": [], "Csrf": []}]
            forbidden = operation["responses"]["403"]
            forbidden["description"] = f"{forbidden['description']}; or {CSRF_ERROR}"
    if not operation.get("description"):
        operation.pop("description", None)
    if not operation.get("parameters"):
        operation.pop("parameters", None)
    for parameter in operation.get("parameters", ()):
        if parameter["in"] == "path" and parameter["schema"].get("type") == "integer":
            # Every <int:...> is a row id (api.inputs.RowIdConverter), not spectree's int32.
            parameter["schema"] = {"type": "integer", "format": "int64", "minimum": 0, "maximum": MAX_ROW_ID}
    responses = operation["responses"]
    for status, types in declared.media.items():
        answer = responses.setdefault(str(status), {"description": "Success"})
        content = answer.setdefault("content", {})
        for media_type in types:
            content[media_type] = {"schema": {"type": "string"}}
    for status, headers in declared.answer_headers.items():
        answer = responses[str(status)]
        answer["headers"] = {name: {"description": text, "schema": {"type": "string"}} for name, text in headers.items()}
    for status, description in GUNICORN_REFUSALS.items():
        responses[str(status)] = {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}
    for status in ("429", "503"):
        if status in responses:
            responses[status]["headers"] = RETRY_AFTER
    operation["responses"] = dict(sorted(responses.items()))
    if "requestBody" in operation and "multipart/form-data" not in operation["requestBody"]["content"]:
        # An empty body is an empty object to every JSON endpoint: the body is optional.
        operation["requestBody"]["required"] = False
