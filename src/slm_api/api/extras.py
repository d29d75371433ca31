"""Tokenizer and template access: /extras/tokenize, /extras/tokenize/count, /extras/detokenize,
/extras/apply-template (the prompt a chat request would generate from)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from slm_api import state
from slm_api.api.body import parse_body
from slm_api.api.schemas import ApplyTemplateRequest, DetokenizeRequest, TokenizeRequest

bp = Blueprint("extras", __name__, url_prefix="/extras")


@bp.post("/tokenize")
def tokenize() -> Response:
    req = parse_body(TokenizeRequest)
    with state.engine().use(req.model) as model:
        return jsonify({"tokens": model.tokenize(req.input, add_special=req.add_special)})


@bp.post("/tokenize/count")
def count() -> Response:
    req = parse_body(TokenizeRequest)
    with state.engine().use(req.model) as model:
        return jsonify({"count": len(model.tokenize(req.input, add_special=req.add_special))})


@bp.post("/detokenize")
def detokenize() -> Response:
    req = parse_body(DetokenizeRequest)
    with state.engine().use(req.model) as model:
        return jsonify({"text": model.detokenize(req.tokens)})


@bp.post("/apply-template")
def apply_template() -> Response:
    req = parse_body(ApplyTemplateRequest)
    messages, tools = req.message_dicts(), req.tool_dicts()
    with state.engine().use(req.model) as model:
        prompt = model.chat.render(messages, tools=tools, add_generation_prompt=True)
        return jsonify({"prompt": prompt, "chat_format": model.chat.name})
