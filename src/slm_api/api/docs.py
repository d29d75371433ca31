"""The API described: /openapi.json (OpenAPI 3.1), Swagger UI at /docs, ReDoc at /redoc.

The spec is built from the live url_map, so every route the app serves is in it, and request
bodies come from the pydantic models in schemas.py. The UIs' JavaScript and CSS are served by
this server (the machine may be offline): Swagger UI's from the flask-swagger-ui package, ReDoc's
standalone bundle vendored under slm_api/static/redoc (from the npm package redoc 2.5.4, MIT).
"""

from __future__ import annotations

import inspect
import re
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import flask_swagger_ui
from flask import Blueprint, Flask, Response, current_app, jsonify, send_from_directory, url_for
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from werkzeug.routing import Rule

from slm_api.api import messages_schemas, responses_schemas, schemas
from slm_api.security import route_policy

bp = Blueprint("docs", __name__)

SWAGGER_DIR = Path(flask_swagger_ui.__file__).resolve().parent / "dist"
REDOC_DIR = Path(__file__).resolve().parents[1] / "static" / "redoc"

# Endpoint -> the model its JSON body is validated as. A POST route missing here makes
# tests/test_docs.py fail, so a new route cannot silently go undocumented.
REQUEST_BODIES: dict[str, type[BaseModel]] = {
    "chat.chat_completions": schemas.ChatCompletionRequest,
    "completions.completions": schemas.CompletionRequest,
    "embeddings.embeddings": schemas.EmbeddingRequest,
    "extract.extract": schemas.ExtractRequest,
    "extras.tokenize": schemas.TokenizeRequest,
    "extras.count": schemas.TokenizeRequest,
    "extras.detokenize": schemas.DetokenizeRequest,
    "extras.apply_template": schemas.ApplyTemplateRequest,
    "admin.load": schemas.LoadRequest,
    "admin.reload": schemas.ReloadRequest,
    "admin.load_model": schemas.ModelLoadRequest,
    "admin.set_model": schemas.SetModelRequest,
    "admin.restore_cache": schemas.RestoreCacheRequest,
    "messages.create_message": messages_schemas.MessagesRequest,
    "messages.count_tokens": messages_schemas.CountTokensRequest,
    "responses.create_response": responses_schemas.ResponseRequest,
}
# Endpoints that answer text/event-stream when the body says "stream": true.
STREAMING = frozenset({"chat.chat_completions", "completions.completions",
                       "messages.create_message", "responses.create_response"})
_METHODS = ("get", "post", "put", "patch", "delete")
_ARG = re.compile(r"<(?:[a-zA-Z_]+(?:\([^)]*\))?:)?([a-zA-Z_][a-zA-Z0-9_]*)>")

_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}


def _version() -> str:
    try:
        return metadata.version("slm-api")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _summary(endpoint: str, view: Any) -> str:
    # The view's docstring, else its module's: both are written for humans already.
    doc = inspect.getdoc(view) or inspect.getdoc(sys.modules.get(view.__module__)) or endpoint
    return doc.strip().splitlines()[0][:120]


@lru_cache(maxsize=1)
def _component_schemas() -> tuple[dict[type[BaseModel], str], dict[str, Any]]:
    models = list(dict.fromkeys(REQUEST_BODIES.values()))
    refs, defs = models_json_schema(
        [(m, "validation") for m in models], ref_template="#/components/schemas/{model}"
    )
    names = {m: refs[(m, "validation")]["$ref"].rsplit("/", 1)[1] for m in models}
    return names, defs.get("$defs", {})


def _operation(app: Flask, rule: Rule, method: str, keys_on: bool) -> dict[str, Any]:
    endpoint = rule.endpoint
    names, _ = _component_schemas()
    op: dict[str, Any] = {
        "operationId": f"{endpoint.replace('.', '_')}_{method}",
        "summary": _summary(endpoint, app.view_functions[endpoint]),
        "tags": [endpoint.rpartition(".")[0] or "app"],
        "responses": {
            "200": {"description": "Success", "content": {"application/json": {"schema": {}}}},
            "default": {"$ref": "#/components/responses/Error"},
        },
    }
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _ARG.findall(rule.rule)
    ]
    if params:
        op["parameters"] = params
    model = REQUEST_BODIES.get(endpoint)
    if model is not None and method in ("post", "put", "patch"):
        ref = {"$ref": f"#/components/schemas/{names[model]}"}
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref}}}
    if endpoint in STREAMING:
        op["responses"]["200"]["content"]["text/event-stream"] = {
            "schema": {"type": "string", "description": "`data: {json}` frames, then [DONE]"}
        }
    policy = route_policy(endpoint, app.config["SETTINGS"])
    if policy == "admin":
        op["description"] = (
            "Admin route: needs a key from ADMIN_API_KEYS, or a loopback client when none is set."
        )
    if keys_on or policy == "admin":
        op["security"] = [] if policy == "open" else [{"bearerAuth": []}]
    return op


def build_spec(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 document for every route of `app`."""
    keys_on = bool(app.extensions.get("slm_keys") and app.extensions["slm_keys"].enabled)
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static":
            continue
        path = _ARG.sub(r"{\1}", rule.rule)
        for method in _METHODS:
            if method.upper() in (rule.methods or ()):
                paths.setdefault(path, {})[method] = _operation(app, rule, method, keys_on)
    _, defs = _component_schemas()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "slm-api",
            "version": _version(),
            "description": "A local, OpenAI-compatible LLM server. Errors use OpenAI's envelope "
            '`{"error": {"message", "type", "param", "code"}}`.',
        },
        "paths": paths,
        "components": {
            "schemas": {**defs, "Error": _ERROR_SCHEMA},
            "responses": {
                "Error": {
                    "description": "An error, in the OpenAI error envelope",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
            },
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }


@bp.get("/openapi.json")
def openapi() -> Response:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    spec = app.extensions.get("slm_openapi")
    if spec is None:  # routes are fixed once serving starts: build once
        spec = app.extensions["slm_openapi"] = build_spec(app)
    return jsonify(spec)


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
def swagger_ui() -> Response:
    return _html(_SWAGGER_PAGE.format(
        css=url_for("docs.swagger_asset", filename="swagger-ui.css"),
        js=url_for("docs.swagger_asset", filename="swagger-ui-bundle.js"),
        spec=url_for("docs.openapi"),
    ))


@bp.get("/redoc")
def redoc() -> Response:
    return _html(_REDOC_PAGE.format(
        js=url_for("docs.redoc_asset", filename="redoc.standalone.js"),
        spec=url_for("docs.openapi"),
    ))


@bp.get("/docs/swagger-ui/<path:filename>")
def swagger_asset(filename: str) -> Response:
    # send_from_directory refuses paths that leave the folder.
    return send_from_directory(SWAGGER_DIR, filename, max_age=86400)


@bp.get("/docs/redoc/<path:filename>")
def redoc_asset(filename: str) -> Response:
    return send_from_directory(REDOC_DIR, filename, max_age=86400)
