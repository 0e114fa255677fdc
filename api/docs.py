"""The API's description: GET /api/openapi.json (OpenAPI 3.1) and GET /api/docs (Swagger UI).

The document is derived from the endpoints' declarations (api/openapi.py). The page's assets
come from the installed flask-swagger-ui package (its Swagger UI 5 dist), served from here:
nothing is loaded from the network, and the page runs no inline script (see DOCS_POLICY).
Both are public, like /api/health: they describe the API, they reveal no data.
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from flask import Blueprint, Response, jsonify, request, send_from_directory

from api.auth import DOCS_ASSETS
from api.openapi import document

blueprint = Blueprint("docs", __name__)
SWAGGER_DIST = Path(str(files("flask_swagger_ui"))) / "dist"
# Only our own origin; Swagger UI sets style attributes, hence 'unsafe-inline' for styles only.
DOCS_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
               "connect-src 'self'; font-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
PAGE = """<!DOCTYPE html>
<html lang="es">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Sistema OCR Empresarial Asíncrono: API</title>
  <link rel="stylesheet" href="{root}/api/docs/swagger-ui.css">
  <link rel="stylesheet" href="{root}/api/docs/index.css">
</head>
<body>
  <div id="swagger-ui" data-spec-url="{root}/api/openapi.json"></div>
  <script src="{root}/api/docs/swagger-ui-bundle.js"></script>
  <script src="{root}/api/docs/docs.js"></script>
</body>
</html>
"""
# validatorUrl null: Swagger UI would otherwise fetch a badge from an outside validator.
INIT_SCRIPT = """window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
"""


@blueprint.get("/openapi.json")
def openapi_json() -> Response:
    return jsonify(document())


@blueprint.get("/docs")
def docs_page() -> Response:
    response = Response(PAGE.format(root=request.script_root), content_type="text/html; charset=utf-8")
    response.headers["Content-Security-Policy"] = DOCS_POLICY
    return response


def _asset(name: str) -> Response:
    if name == "docs.js":
        response = Response(INIT_SCRIPT, content_type="text/javascript; charset=utf-8")
    else:
        response = send_from_directory(SWAGGER_DIST, name)
    response.headers["Content-Security-Policy"] = DOCS_POLICY
    return response


for _name in DOCS_ASSETS:
    blueprint.add_url_rule(f"/docs/{_name}", f"asset_{_name.replace('.', '_').replace('-', '_')}",
                           lambda name=_name: _asset(name), methods=["GET"])
