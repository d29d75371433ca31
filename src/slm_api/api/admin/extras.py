"""Tokenizer and template access: /extras/tokenize, /extras/tokenize/count, /extras/detokenize,
/extras/apply-template (the prompt a chat request would generate from)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from slm_api.api.admin.protocol import (
    AppliedTemplate,
    ApplyTemplateRequest,
    CountResult,
    DetokenizeRequest,
    DetokenizeResult,
    TokenizeRequest,
    TokenizeResult,
)
from slm_api.api.core.body import parse_body
from slm_api.api.core.contract import contract
from slm_api.api.core.planner import plan
from slm_api.api.core.rights import use_model

bp = Blueprint("extras", __name__, url_prefix="/extras")


@bp.post("/tokenize")
@contract(access="api", body=TokenizeRequest, response=TokenizeResult)
def tokenize() -> Response:
    """Tokenize text with a model's tokenizer."""
    req = parse_body(TokenizeRequest)
    with use_model(req.model) as model:
        tokens = model.tokenize(req.input, add_special=req.add_special, param=None)
        return jsonify({"tokens": tokens})


@bp.post("/tokenize/count")
@contract(access="api", body=TokenizeRequest, response=CountResult)
def count() -> Response:
    """Count the tokens of a text."""
    req = parse_body(TokenizeRequest)
    with use_model(req.model) as model:
        tokens = model.tokenize(req.input, add_special=req.add_special, param=None)
        return jsonify({"count": len(tokens)})


@bp.post("/detokenize")
@contract(access="api", body=DetokenizeRequest, response=DetokenizeResult)
def detokenize() -> Response:
    """Turn token ids back into text."""
    req = parse_body(DetokenizeRequest)
    with use_model(req.model) as model:
        return jsonify({"text": model.detokenize(req.tokens)})


@bp.post("/apply-template")
@contract(access="api", body=ApplyTemplateRequest, response=AppliedTemplate)
def apply_template() -> Response:
    """The prompt a chat request with these fields reads (its tools and thinking planned as
    chat plans them), without generating."""
    req = parse_body(ApplyTemplateRequest)
    with use_model(req.model) as model:
        planned = plan(model.chat, req.to_turn(), model.tokenize)
        return jsonify({"prompt": planned.prompt, "chat_format": model.chat.name})
