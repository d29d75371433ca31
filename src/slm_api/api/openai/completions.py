"""POST /v1/completions: the legacy text-in, text-out API."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, jsonify

from slm_api.api.core.body import choice_count, completion_budget, one_or_many, parse_body
from slm_api.api.core.contract import contract
from slm_api.api.core.logprobs import completion_logprobs
from slm_api.api.core.reply import finish_reason, usage
from slm_api.api.core.run import Run, build_request, close_on_error, collect_choices, iterate
from slm_api.api.core.sse import sse_response
from slm_api.api.openai.protocol import Completion, CompletionRequest
from slm_api.engine import Finished, TokenLogprob
from slm_api.plumbing import state

bp = Blueprint("completions", __name__)


@bp.post("/v1/completions")
@contract(body=CompletionRequest, response=Completion, stream=Completion)
def completions() -> Response:
    """Create a text completion (the legacy API).

    A prompt (text or token ids, one or several) in, its continuation out."""
    req = parse_body(CompletionRequest)
    # OpenAI's default of 16 tokens, never above this server's cap.
    cap = state.settings().max_tokens_cap
    explicit = "max_tokens" in req.model_fields_set
    max_tokens = completion_budget(req.max_tokens if explicit else min(16, cap))
    params = req.to_sampling_params(n_probs=req.logprobs or 0)
    n = choice_count(req.n)

    # Submit every prompt before reading any: with batching they generate side by side.
    runs: list[Run] = []
    texts: list[str] = []
    with close_on_error(runs):
        for prompt in one_or_many(req.prompt):
            run = Run(req.model, req.to_load_options())
            runs.append(run)
            if isinstance(prompt, str):
                tokens, text = run.model.tokenize(prompt, param="prompt"), prompt
            else:
                tokens, text = prompt, run.model.detokenize(prompt)
            texts.append(text)
            run.submit_choices(
                build_request(run.model, tokens, max_tokens, params, req.stop or ()), n)

    reply = _Reply(runs[0].model.info.id, req, runs, texts, n)
    if req.stream:
        return sse_response(reply.stream())
    return jsonify(reply.complete())


class _Reply:
    """Shapes the runs' output as a text_completion object, or as its streamed chunks."""

    def __init__(self, model_id: str, req: CompletionRequest, runs: list[Run], texts: list[str],
                 n: int):
        self.n = n  # choices per prompt: prompt p's choice j has index p * n + j
        self.id = f"cmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model_id
        self.req = req
        self.runs = runs
        self.texts = texts  # each prompt as text, for echo and logprob offsets

    def _logprobs(self, logprobs: list[TokenLogprob], offset: int) -> dict[str, Any] | None:
        if self.req.logprobs is None:
            return None
        return completion_logprobs(logprobs, self.req.logprobs, offset)

    def _envelope(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {"id": self.id, "object": "text_completion", "created": self.created,
                "model": self.model, "choices": choices, **extra}

    @staticmethod
    def _choice(index: int, text: str, lps: Any, reason: str | None) -> dict[str, Any]:
        return {"text": text, "index": index, "logprobs": lps, "finish_reason": reason}

    def complete(self) -> dict[str, Any]:
        choices, totals = [], {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        for p, (run, prompt_text) in enumerate(zip(self.runs, self.texts, strict=True)):
            with run:
                outs = collect_choices(run.generation)
            echo = prompt_text if self.req.echo else ""
            for j, out in enumerate(outs):
                lps = self._logprobs(out.logprobs, len(echo))
                choices.append(self._choice(p * self.n + j, echo + out.text, lps,
                                            finish_reason(out.finished)))
            for key, value in usage(run.generation.result).items():
                if key in totals:
                    totals[key] += value
        return self._envelope(choices, usage=totals)

    def stream(self) -> Iterator[dict[str, Any]]:
        try:
            for p, (run, prompt_text) in enumerate(zip(self.runs, self.texts, strict=True)):
                first = p * self.n
                if self.req.echo:
                    for j in range(self.n):
                        yield self._envelope([self._choice(first + j, prompt_text, None, None)])
                offsets = [len(prompt_text) if self.req.echo else 0] * self.n
                # A prompt's choices arrive interleaved, each ending with its Finished.
                for j, item in iterate(run):
                    if isinstance(item, Finished):
                        yield self._envelope([self._choice(first + j, "", None,
                                                           finish_reason(item))])
                        continue
                    if not item.text and not item.logprobs:
                        continue
                    lps = self._logprobs(list(item.logprobs), offsets[j])
                    offsets[j] += len(item.text)
                    yield self._envelope([self._choice(first + j, item.text, lps, None)])
        finally:
            for run in self.runs:
                run.close()
