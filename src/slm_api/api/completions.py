"""POST /v1/completions: the legacy text-in, text-out API."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from slm_api.api.generate import (
    Run,
    build_request,
    collect,
    completion_budget,
    finish_reason,
    iterate,
    load_options,
    parse_body,
    sampling_params,
    usage,
)
from slm_api.api.logprobs import completion_logprobs
from slm_api.api.schemas import CompletionRequest
from slm_api.api.sse import sse_response

bp = Blueprint("completions", __name__)


def _prompts(prompt: Any) -> list[str | list[int]]:
    if isinstance(prompt, str):
        return [prompt]
    if all(isinstance(p, int) for p in prompt):
        return [list(prompt)]
    return list(prompt)


@bp.post("/v1/completions")
def completions() -> Response:
    req = parse_body(CompletionRequest)
    # OpenAI's default of 16 tokens, never above this server's cap.
    cap = current_app.config["SETTINGS"].max_tokens_cap
    explicit = "max_tokens" in req.model_fields_set
    max_tokens = completion_budget(req.max_tokens if explicit else min(16, cap))
    params = sampling_params(req, n_probs=req.logprobs or 0)
    cid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())

    # Submit every prompt before reading any: with batching they generate side by side.
    runs: list[Run] = []
    texts: list[str] = []
    try:
        for prompt in _prompts(req.prompt):
            run = Run(req.model, load_options(req.load_model_configs))
            runs.append(run)
            if isinstance(prompt, str):
                tokens, text = run.model.tokenize(prompt, param="prompt"), prompt
            else:
                tokens, text = prompt, run.model.detokenize(prompt)
            texts.append(text)
            run.submit(build_request(run.model, tokens, max_tokens, params, req.stop or ()))
    except BaseException:
        for run in runs:
            run.close()
        raise
    model_id = runs[0].model.info.id

    def choice(index: int, text: str, lps: Any, reason: str | None) -> dict[str, Any]:
        return {"text": text, "index": index, "logprobs": lps, "finish_reason": reason}

    def envelope(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {"id": cid, "object": "text_completion", "created": created, "model": model_id,
                "choices": choices, **extra}

    if req.stream:
        def events() -> Iterator[dict[str, Any]]:
            try:
                for index, (run, prompt_text) in enumerate(zip(runs, texts, strict=True)):
                    if req.echo:
                        yield envelope([choice(index, prompt_text, None, None)])
                    offset = len(prompt_text) if req.echo else 0
                    for chunk in iterate(run):
                        if not chunk.text and not chunk.logprobs:
                            continue
                        lps = (completion_logprobs(list(chunk.logprobs), req.logprobs, offset)
                               if req.logprobs is not None else None)
                        offset += len(chunk.text)
                        yield envelope([choice(index, chunk.text, lps, None)])
                    result = run.generation.result if run.generation else None
                    yield envelope([choice(index, "", None, finish_reason(result))])
            finally:
                for run in runs:
                    run.close()

        return sse_response(events())

    choices, totals = [], {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    for index, (run, prompt_text) in enumerate(zip(runs, texts, strict=True)):
        with run:
            out = collect(run.generation)
        text = prompt_text + out.text if req.echo else out.text
        lps = None
        if req.logprobs is not None:
            lps = completion_logprobs(out.logprobs, req.logprobs,
                                      len(prompt_text) if req.echo else 0)
        choices.append(choice(index, text, lps, finish_reason(out.finished)))
        for key, value in usage(out.finished).items():
            if key in totals:
                totals[key] += value
    return jsonify(envelope(choices, usage=totals))
