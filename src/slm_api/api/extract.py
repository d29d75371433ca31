"""POST /v1/extract: text in, JSON that fits a schema out."""

from __future__ import annotations

import json
import time

from flask import Blueprint, Response, jsonify

from slm_api.api.generate import (
    Run,
    build_request,
    collect,
    completion_budget,
    parse_body,
    usage,
)
from slm_api.api.schemas import ExtractRequest
from slm_api.api.structured import ANY_OBJECT, parse_and_validate, schema_grammar
from slm_api.engine import SamplingParams
from slm_api.errors import APIError

bp = Blueprint("extract", __name__)

DEFAULT_INSTRUCTIONS = (
    "Extract the information from the text below as JSON. Use only facts stated in the text."
)


@bp.post("/v1/extract")
def extract() -> Response:
    started = time.perf_counter()
    req = parse_body(ExtractRequest)
    schema = req.schema_ if req.schema_ is not None else ANY_OBJECT
    grammar = schema_grammar(schema)
    max_tokens = completion_budget(req.max_tokens)
    instructions = req.instructions or DEFAULT_INSTRUCTIONS
    if req.schema_ is not None:
        instructions += "\nThe JSON must fit this JSON Schema:\n" + json.dumps(schema)
    messages = [
        {"role": "system", "content": instructions},
        {"role": "user", "content": req.text},
    ]
    sampling = SamplingParams(temperature=req.temperature, seed=req.seed, grammar=grammar)
    with Run(req.model) as run:
        prompt = run.model.tokenize(run.model.chat.render(messages, add_generation_prompt=True))
        run.submit(build_request(run.model, prompt, max_tokens, sampling, run.model.chat.stop))
        out = collect(run.generation)
        model_id = run.model.info.id
    if out.finished is not None and out.finished.finish_reason == "length":
        raise APIError(
            502, "the output reached max_tokens before the JSON was complete; raise max_tokens",
            param="max_tokens", code="output_truncated",
        )
    data = parse_and_validate(out.text, schema)
    return jsonify(
        {
            "object": "extract.result",
            "created": int(time.time()),
            "model": model_id,
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
            "data": data,
            "usage": usage(out.finished),
        }
    )
