"""POST /v1/completions: the legacy text-in, text-out API."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from slm_api.api.conversation import collect_choices
from slm_api.api.generate import (
    Run,
    build_request,
    choice_count,
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
from slm_api.engine import Finished

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
    n = choice_count(req.n)
    cid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())

    # Submit every prompt before reading any: with batching they generate side by side.
    runs: list[Run] = []
    texts: list[str] = []
    try:
        for prompt in _prompts(req.prompt):
            run = Run(req.model, load_options(req.load_model_configs))
            runs.append(run)
            if isinstance(prompt, str):
                tokens, text = run.model.tokenize(prompt), prompt
            else:
                tokens, text = prompt, run.model.detokenize(prompt)
            texts.append(text)
            run.submit_choices(
                build_request(run.model, tokens, max_tokens, params, req.stop or ()), n)
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
            # Prompt p's choice j is choice p * n + j; a prompt's choices arrive interleaved.
            try:
                for p, (run, prompt_text) in enumerate(zip(runs, texts, strict=True)):
                    if req.echo:
                        for j in range(n):
                            yield envelope([choice(p * n + j, prompt_text, None, None)])
                    offsets = [len(prompt_text) if req.echo else 0] * n
                    for j, item in iterate(run):
                        if isinstance(item, Finished):
                            yield envelope([choice(p * n + j, "", None, finish_reason(item))])
                            continue
                        if not item.text and not item.logprobs:
                            continue
                        lps = (completion_logprobs(list(item.logprobs), req.logprobs, offsets[j])
                               if req.logprobs is not None else None)
                        offsets[j] += len(item.text)
                        yield envelope([choice(p * n + j, item.text, lps, None)])
            finally:
                for run in runs:
                    run.close()

        return sse_response(events())

    choices, totals = [], {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    for p, (run, prompt_text) in enumerate(zip(runs, texts, strict=True)):
        with run:
            outs = collect_choices(run.generation)
        for j, out in enumerate(outs):
            text = prompt_text + out.text if req.echo else out.text
            lps = None
            if req.logprobs is not None:
                lps = completion_logprobs(out.logprobs, req.logprobs,
                                          len(prompt_text) if req.echo else 0)
            choices.append(choice(p * n + j, text, lps, finish_reason(out.finished)))
        for key, value in usage(run.generation.result).items():
            if key in totals:
                totals[key] += value
    return jsonify(envelope(choices, usage=totals))
