"""The API described: /openapi.json (OpenAPI 3.1), Swagger UI at /docs, ReDoc at /redoc.

The document is built by openapi.py from the live routes and their contracts. The UIs'
JavaScript and CSS are served by this server (the machine may be offline): Swagger UI's from the
flask-swagger-ui package, ReDoc's standalone bundle vendored under slm_api/static/redoc (from the
npm package redoc 2.5.4, MIT).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flask_swagger_ui
from flask import Blueprint, Flask, Response, current_app, jsonify, send_from_directory, url_for
from pydantic import BaseModel

from slm_api.api.admin import openapi
from slm_api.api.core.contract import contract

bp = Blueprint("docs", __name__)
_EXTENSION = "slm_openapi"

SWAGGER_DIR = Path(flask_swagger_ui.__file__).resolve().parent / "dist"
REDOC_DIR = Path(__file__).resolve().parents[2] / "static" / "redoc"

# Endpoint -> request model, for views that declare no @contract(body=...) (a route added in a
# hurry). tests/admin/test_docs.py fails for a body route documented by neither.
REQUEST_BODIES: dict[str, type[BaseModel]] = {}
_ASSET_TYPES = ("text/css", "text/javascript", "application/javascript", "application/json",
                "image/png", "text/html", "application/octet-stream")


def build_spec(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 document for every route of `app`."""
    return openapi.build_spec(app, REQUEST_BODIES)


def openapi_spec(app: Flask) -> dict[str, Any]:
    """The document, built once per app: routes are fixed once serving starts."""
    spec = app.extensions.get(_EXTENSION)
    if spec is None:
        spec = app.extensions[_EXTENSION] = build_spec(app)
    return spec


@bp.get("/openapi.json", endpoint="openapi")
@contract(access="open")
def openapi_json() -> Response:
    """This document: OpenAPI 3.1, built from the routes the server serves."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return jsonify(openapi_spec(app))


_SWAGGER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>slm-api - Swagger UI</title>
<link rel="stylesheet" href="{css}"></head>
<body><div id="swagger-ui"></div>
<script src="{js}"></script>
<script>
window.onload = function () {{
  window.ui = SwaggerUIBundle({{url: "{spec}", dom_id: "#swagger-ui", deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout", validatorUrl: null}});
}};
</script></body></html>
"""

_REDOC_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>slm-api - ReDoc</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body {{ margin: 0; padding: 0; }}</style></head>
<body><redoc spec-url="{spec}"></redoc>
<script src="{js}"></script></body></html>
"""


def _html(text: str) -> Response:
    return Response(text, mimetype="text/html")


@bp.get("/docs")
@contract(access="open", content_type="text/html")
def swagger_ui() -> Response:
    """Swagger UI for this document (served offline)."""
    return _html(_SWAGGER_PAGE.format(
        css=url_for("docs.swagger_asset", filename="swagger-ui.css"),
        js=url_for("docs.swagger_asset", filename="swagger-ui-bundle.js"),
        spec=url_for("docs.openapi"),
    ))


@bp.get("/redoc")
@contract(access="open", content_type="text/html")
def redoc() -> Response:
    """ReDoc for this document (served offline)."""
    return _html(_REDOC_PAGE.format(
        js=url_for("docs.redoc_asset", filename="redoc.standalone.js"),
        spec=url_for("docs.openapi"),
    ))


@bp.get("/docs/swagger-ui/<path:filename>")
@contract(access="open", content_type=_ASSET_TYPES)
def swagger_asset(filename: str) -> Response:
    """A Swagger UI asset (JavaScript, CSS, images)."""
    # send_from_directory refuses paths that leave the folder.
    return send_from_directory(SWAGGER_DIR, filename, max_age=86400)


@bp.get("/docs/redoc/<path:filename>")
@contract(access="open", content_type=_ASSET_TYPES)
def redoc_asset(filename: str) -> Response:
    """A ReDoc asset (its standalone JavaScript bundle)."""
    return send_from_directory(REDOC_DIR, filename, max_age=86400)
