"""Tokenizer and template access: /extras/tokenize, /extras/tokenize/count, /extras/detokenize,
/extras/apply-template (the prompt a chat request would generate from)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from slm_api.api.errors import APIError
from slm_api.api.generate import engine, parse_body
from slm_api.api.schemas import ApplyTemplateRequest, DetokenizeRequest, TokenizeRequest

bp = Blueprint("extras", __name__, url_prefix="/extras")


@bp.post("/tokenize")
def tokenize() -> Response:
    req = parse_body(TokenizeRequest)
    with engine().use(req.model) as model:
        return jsonify({"tokens": model.tokenize(req.input, add_special=req.add_special)})


@bp.post("/tokenize/count")
def count() -> Response:
    req = parse_body(TokenizeRequest)
    with engine().use(req.model) as model:
        return jsonify({"count": len(model.tokenize(req.input, add_special=req.add_special))})


@bp.post("/detokenize")
def detokenize() -> Response:
    req = parse_body(DetokenizeRequest)
    with engine().use(req.model) as model:
        if any(t < 0 or t >= model.info.n_vocab for t in req.tokens):
            raise APIError(400, f"token ids must be in [0, {model.info.n_vocab})", param="tokens")
        return jsonify({"text": model.detokenize(req.tokens)})


@bp.post("/apply-template")
def apply_template() -> Response:
    req = parse_body(ApplyTemplateRequest)
    messages = [m.model_dump(exclude_none=True) for m in req.messages]
    tools = [t.model_dump(exclude_none=True) for t in req.tools] if req.tools else None
    with engine().use(req.model) as model:
        prompt = model.chat.render(messages, tools=tools, add_generation_prompt=True)
        return jsonify({"prompt": prompt, "chat_format": model.chat.name})
