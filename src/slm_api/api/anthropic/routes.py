"""The Anthropic Messages API, HTTP only: POST /v1/messages and /v1/messages/count_tokens.

Bodies parse into protocol.py's models and serving.py runs them over the shared core. Errors on
these routes use Anthropic's envelope (errors.py), streams Anthropic's named events.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from slm_api.api.anthropic import serving
from slm_api.api.anthropic.errors import ANTHROPIC
from slm_api.api.anthropic.protocol import (
    AnthropicError,
    CountTokensRequest,
    Message,
    MessagesRequest,
    MessageStreamEvent,
    TokenCount,
)
from slm_api.api.core.body import parse_body
from slm_api.api.core.contract import contract
from slm_api.api.core.dialect import bind_dialect
from slm_api.api.core.sse import stream_response

bp = Blueprint("messages", __name__)
bind_dialect(bp, ANTHROPIC)


@bp.post("/v1/messages")
@contract(access="api", body=MessagesRequest, response=Message, stream=MessageStreamEvent,
          error=AnthropicError, media=True, named_events=True)
def create_message() -> Response:
    """Create a message (Anthropic Messages API).

    System text and messages (text, tool_use and tool_result blocks) plus tools in, content
    blocks out; errors in Anthropic's envelope. With `"stream": true`, Anthropic's named
    events (`event: message_start`, ...), with no `[DONE]`."""
    req = parse_body(MessagesRequest)
    reply = serving.MessageReply(req)
    if req.stream:
        return stream_response(reply.stream())
    return jsonify(reply.complete().model_dump())


@bp.post("/v1/messages/count_tokens")
@contract(access="api", body=CountTokensRequest, response=TokenCount, error=AnthropicError,
          media=True)
def count_tokens() -> Response:
    """The prompt tokens a /v1/messages request with this system, messages and tools would use."""
    return jsonify(serving.count_tokens(parse_body(CountTokensRequest)).model_dump())
