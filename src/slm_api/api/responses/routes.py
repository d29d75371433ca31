"""The OpenAI Responses API, HTTP only: POST /v1/responses, GET and DELETE /v1/responses/{id}.

Bodies parse into protocol.py's models, serving.py runs them over the shared core and shapes
the response object (or its named, numbered stream events); stored responses live in SQLite
(store.py), opened when the blueprint is registered.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, g, jsonify

from slm_api.api.core.body import parse_body
from slm_api.api.core.contract import contract
from slm_api.api.core.dialect import bind_dialect
from slm_api.api.core.sse import stream_response
from slm_api.api.responses import serving
from slm_api.api.responses.protocol import (
    DeletedResponse,
    ResponseObject,
    ResponseRequest,
    ResponseStreamEvent,
)
from slm_api.api.responses.store import ResponseStore, set_responses_store
from slm_api.plumbing import state

bp = Blueprint("responses", __name__)
bind_dialect(bp, serving.RESPONSES)


@bp.record_once
def _open_store(setup: Any) -> None:
    # The file is created on first use: an app that never stores a response writes nothing.
    app: Flask = setup.app
    settings = state.settings(app)
    set_responses_store(app, ResponseStore(
        settings.data_dir / "responses.sqlite3",
        ttl_s=settings.responses_ttl_s, max_stored=settings.responses_max_stored,
        max_bytes_per_owner=settings.responses_max_bytes_per_client,
    ))


@bp.post("/v1/responses")
@contract(access="api", body=ResponseRequest, response=ResponseObject,
          stream=ResponseStreamEvent, media=True,
          named_events=True)
def create_response() -> Response:
    """Create a model response (OpenAI Responses API).

    Input items (messages, function calls and their outputs) plus function tools in, output
    items out. With `store` (the default) it is kept for `previous_response_id` and GET. With
    `"stream": true`, named and numbered events (`event: response.created`, ...), no `[DONE]`."""
    req = parse_body(ResponseRequest)
    reply = serving.ResponseReply(req, g.client_id)
    if req.stream:
        return stream_response(reply.stream())
    return jsonify(reply.complete())


@bp.get("/v1/responses/<response_id>")
@contract(access="api", response=ResponseObject)
def get_response(response_id: str) -> Response:
    """A stored response, as it was returned."""
    return jsonify(serving.stored(g.client_id, response_id))


@bp.delete("/v1/responses/<response_id>")
@contract(access="api", response=DeletedResponse)
def delete_response(response_id: str) -> Response:
    """Forget a stored response: it can no longer be read or continued."""
    serving.delete(g.client_id, response_id)
    return jsonify(DeletedResponse(id=response_id).model_dump())
