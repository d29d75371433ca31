"""The OpenAPI 3.1 document, built from the live url_map and each view's Contract (contract.py).

Every route the app serves is in it. Request and response schemas come from the pydantic models
(each family's protocol.py, api/core/protocol.py); summaries and descriptions from the views'
docstrings; security from what the server enforces with the settings it runs with: with no key
configured no operation claims to need one, and admin routes say they are open to loopback
clients only.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from flask import Flask
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from werkzeug.routing import Rule

from slm_api.api.core.contract import Contract, contract_of
from slm_api.api.core.protocol import ErrorEnvelope
from slm_api.plumbing import state
from slm_api.plumbing.security import get_keys, route_policy

METHODS = ("get", "post", "put", "patch", "delete")
_ARG = re.compile(r"<(?:[a-zA-Z_]+(?:\([^)]*\))?:)?([a-zA-Z_][a-zA-Z0-9_]*)>")
_REF = "#/components/schemas/{model}"


def openapi_path(rule: Rule) -> str:
    return _ARG.sub(r"{\1}", rule.rule)


def documented_methods(rule: Rule) -> list[str]:
    """The methods of `rule` the document lists (HEAD and OPTIONS are HTTP's, not the API's)."""
    return [m for m in METHODS if m.upper() in (rule.methods or ())]


def _version() -> str:
    try:
        return metadata.version("slm-api")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _texts(endpoint: str, view: Any) -> tuple[str, str]:
    # The view's own docstring only: a module docstring repeated on every route says nothing.
    doc = inspect.getdoc(view) or ""
    first, _, rest = doc.strip().partition("\n")
    summary = first.strip() or endpoint.rpartition(".")[2].replace("_", " ").capitalize()
    return summary[:120], rest.strip()


class _Schemas:
    """Component schemas of every model the routes use, with their names."""

    def __init__(self, models: list[tuple[type[BaseModel], str]]):
        models = list(dict.fromkeys(models))
        refs, defs = models_json_schema(models, ref_template=_REF)
        self.names = {key: refs[key]["$ref"].rsplit("/", 1)[1] for key in models}
        self.defs = defs.get("$defs", {})

    def ref(self, model: type[BaseModel], mode: str) -> dict[str, str]:
        return {"$ref": _REF.format(model=self.names[(model, mode)])}


def _contracts(app: Flask, fallback: Mapping[str, type[BaseModel]]) -> dict[str, Contract]:
    out: dict[str, Contract] = {}
    for endpoint, view in app.view_functions.items():
        declared = contract_of(view) or Contract()
        if declared.body is None and endpoint in fallback:
            declared = Contract(**{**declared.__dict__, "body": fallback[endpoint]})
        out[endpoint] = declared
    return out


def _security(app: Flask, endpoint: str) -> tuple[list[dict] | None, str]:
    """The operation's `security` (None: leave the document's default, none) and a sentence."""
    keys = get_keys(app)
    policy = route_policy(app, endpoint, state.settings(app))
    if policy == "open":
        return ([] if keys and keys.enabled else None), ""
    if policy == "admin":
        if keys and keys.admin:
            return [{"bearerAuth": []}], "Admin route: needs a key from ADMIN_API_KEYS."
        loopback = ("Admin route: ADMIN_API_KEYS is empty on this server, so only loopback "
                    "clients may call it (others get 403).")
        return ([{"bearerAuth": []}] if keys and keys.enabled else None), loopback
    if keys and keys.enabled:
        return [{"bearerAuth": []}], ""
    return None, "No key needed: none is configured on this server."


def _operation(app: Flask, rule: Rule, method: str, declared: Contract,
               schemas: _Schemas) -> dict[str, Any]:
    endpoint = rule.endpoint
    summary, description = _texts(endpoint, app.view_functions[endpoint])
    security, note = _security(app, endpoint)
    op: dict[str, Any] = {
        "operationId": f"{endpoint.replace('.', '_')}_{method}",
        "summary": summary,
        "tags": [endpoint.rpartition(".")[0] or "app"],
    }
    text = "\n\n".join(t for t in (description, note) if t)
    if text:
        op["description"] = text
    params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
              for name in _ARG.findall(rule.rule)]
    if params:
        op["parameters"] = params
    if declared.body is not None and method in ("post", "put", "patch"):
        op["requestBody"] = {"required": True, "content": {
            declared.body_content_type: {"schema": schemas.ref(declared.body, "validation")}}}
    op["responses"] = {str(s): _success(declared, schemas)
                       for s in (declared.status, *declared.statuses)}
    op["responses"]["default"] = {"$ref": "#/components/responses/Error"}
    if declared.error is not None:
        op["responses"]["default"] = {"description": "An error", "content": {
            "application/json": {"schema": schemas.ref(declared.error, "serialization")}}}
    if security is not None:
        op["security"] = security
    return op


def _success(declared: Contract, schemas: _Schemas) -> dict[str, Any]:
    content: dict[str, Any] = {}
    types = declared.content_type
    for ctype in (types,) if isinstance(types, str) else types:
        schema: dict[str, Any] = {}
        if ctype == "application/json" and declared.response is not None:
            schema = schemas.ref(declared.response, "serialization")
        elif not ctype.endswith("json"):
            schema = {"type": "string"}
        content[ctype] = {"schema": schema}
    if declared.stream is not None:
        name = schemas.names[(declared.stream, "serialization")]
        if declared.named_events:
            content["text/event-stream"] = {"schema": {
                "type": "object",
                "required": ["event", "data"],
                "properties": {"event": {"type": "string"}, "data": {"type": "string"}},
                "description": "With `\"stream\": true`: Server-Sent Events, each an `event: "
                f"<type>` line and a `data: ` line holding one {name} object; no `[DONE]`.",
            }}
        else:
            event = schemas.ref(declared.stream, "serialization")
            error = schemas.ref(ErrorEnvelope, "serialization")
            # One schema per event (as schemathesis and OpenAPI 3.2's itemSchema read it).
            content["text/event-stream"] = {"schema": {
                "type": "object",
                "description": "With `\"stream\": true`: Server-Sent Events, each `data: ` "
                f"followed by one {name} object (or an error envelope if the generation fails "
                "mid-way), then `data: [DONE]`.",
                "required": ["data"],
                "properties": {
                    "event": {"type": "string"},
                    "data": {"anyOf": [
                        {"const": "[DONE]"},
                        {"type": "string", "contentMediaType": "application/json",
                         "contentSchema": {"anyOf": [event, error]}},
                    ]},
                },
            }}
    return {"description": "Success", "content": content}


def build_spec(app: Flask, fallback_bodies: Mapping[str, type[BaseModel]]) -> dict[str, Any]:
    """The OpenAPI 3.1 document for every route of `app`; `fallback_bodies` names request
    models for views that declare no Contract (endpoint -> model)."""
    contracts = _contracts(app, fallback_bodies)
    models: list[tuple[type[BaseModel], str]] = [(ErrorEnvelope, "serialization")]
    for c in contracts.values():
        models += [(c.body, "validation")] if c.body else []
        models += [(m, "serialization") for m in (c.response, c.stream, c.error) if m]
    schemas = _Schemas(models)
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static":
            continue
        for method in documented_methods(rule):
            paths.setdefault(openapi_path(rule), {})[method] = _operation(
                app, rule, method, contracts[rule.endpoint], schemas)
    error = schemas.ref(ErrorEnvelope, "serialization")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "slm-api",
            "version": _version(),
            "description": "A local, OpenAI-compatible LLM server. Errors use OpenAI's envelope "
            '`{"error": {"message", "type", "param", "code"}}`; 429 and 503 carry Retry-After.',
        },
        "paths": paths,
        "components": {
            "schemas": {**schemas.defs, "Error": error},
            "responses": {"Error": {
                "description": "An error, in the OpenAI error envelope",
                "content": {"application/json": {"schema": {"$ref": _REF.format(model="Error")}}},
            }},
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
