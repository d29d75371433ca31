"""llama-server's /infill, HTTP only: what llama.vscode and llama.vim call for code completion.
Errors in OpenAI's envelope, as llama-server's."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from slm_api.api.core.body import parse_body
from slm_api.api.core.contract import contract
from slm_api.api.core.dialect import Dialect, bind_dialect
from slm_api.api.core.sse import stream_response
from slm_api.api.infill import serving
from slm_api.api.infill.protocol import InfillReply, InfillRequest

bp = Blueprint("infill", __name__)
# llama-server's own stream: `data:` frames, the last with `stop: true`, no [DONE].
bind_dialect(bp, Dialect(framing="plain_sse"))


@bp.post("/infill")
@contract(access="api", body=InfillRequest, response=InfillReply,
          content_type=("application/json", "text/event-stream"))
def infill() -> Response:
    """Fill in the middle (llama-server's /infill, for llama.vscode and llama.vim).

    The model's FIM tokens around `input_prefix` and `input_suffix`, `input_extra` files before
    them (the repo-level pattern where the model has FIM_REP/FIM_SEP), `prompt` after FIM_MID.
    `n_indent` ends the completion at a line indented less; `t_max_predict_ms` at the first
    newline after that time. A model without FIM tokens is a 400. With `"stream": true`:
    Server-Sent Events of partial objects, the last with `stop: true` (no [DONE], as
    llama-server)."""
    req = parse_body(InfillRequest)
    reply = serving.InfillReply(req)
    if req.stream:
        return stream_response(reply.stream())
    return jsonify(reply.complete())
