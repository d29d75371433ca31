"""Extraction over the shared core: the text and instructions as a chat prompt, the schema
as a grammar (api/core/structured.py), refused up front when `max_tokens` cannot fit the
shortest JSON that fits, and the output parsed and checked against the schema."""

from __future__ import annotations

import json
import time
from typing import Any

from slm_api.api.core.body import completion_budget
from slm_api.api.core.media import plan_with_media
from slm_api.api.core.media_parts import media_intake, refuse_unsupported_kind
from slm_api.api.core.planner import Turn
from slm_api.api.core.protocol import JSONSchemaFormat, ResponseFormat
from slm_api.api.core.reply import usage
from slm_api.api.core.run import Run, build_request, collect
from slm_api.api.core.structured import ANY_OBJECT, parse_and_validate
from slm_api.api.extract.protocol import ExtractRequest
from slm_api.engine import FinishCause, SamplingParams
from slm_api.errors import APIError, Draining

DEFAULT_INSTRUCTIONS = (
    "Extract the information from the text below as JSON. Use only facts stated in the text."
)
DEFAULT_IMAGE_INSTRUCTIONS = (
    "Extract the information from what follows (text and pictures) as JSON. Use only facts "
    "it shows."
)


def _too_small(max_tokens: int, needed: int) -> APIError:
    # The client's budget, not a server fault: a 400 that says what would fit.
    return APIError(
        400, f"max_tokens is {max_tokens}, but the shortest JSON that fits this schema takes "
        f"{needed} tokens; raise max_tokens to at least {needed}",
        param="max_tokens", code="max_tokens_too_small",
    )


def _content(req: ExtractRequest) -> str | list[dict[str, Any]]:
    """The user message: the text, then each picture as the core's image part (checked and
    counted by the media intake, as every family's images are)."""
    if not req.images:
        return req.text or ""
    intake = media_intake()
    parts: list[dict[str, Any]] = [{"type": "text", "text": req.text}] if req.text else []
    for k, image in enumerate(req.images):
        where = f"images.{k}"
        if image.split(":", 1)[0].lower() in ("data", "http", "https"):
            parts.append(intake.image_url(image, param=where))
        else:
            parts.append(intake.image_base64(image, param=where))
    return parts


def extract(req: ExtractRequest, started: float) -> dict[str, Any]:
    """The extract.result for `req`; `started` (perf_counter) is when the request came in."""
    if req.text is None and not req.images:
        raise APIError(400, "text: send the text to extract from (or `images` on a vision "
                       "model)", param="text", code="invalid_value")
    schema = req.schema_ if req.schema_ is not None else ANY_OBJECT
    max_tokens = completion_budget(req.max_tokens)
    instructions = req.instructions or (DEFAULT_IMAGE_INSTRUCTIONS if req.images
                                        else DEFAULT_INSTRUCTIONS)
    if req.schema_ is not None:
        instructions += "\nThe JSON must fit this JSON Schema:\n" + json.dumps(schema)
    # Thinking off: the reply is the JSON and nothing else (a reasoning model's thinking would
    # spend the budget the schema needs).
    turn = Turn(req.model, [{"role": "system", "content": instructions},
                            {"role": "user", "content": _content(req)}],
                response_format=ResponseFormat(type="json_schema", json_schema=JSONSchemaFormat(
                    schema=schema)), thinking=False, prompt_param="text")
    with Run(req.model) as run:
        if req.images:
            refuse_unsupported_kind(run.model, "image", "images")
        planned = plan_with_media(run.model, turn)
        needed = run.model.min_output_tokens(planned.answer_grammar)
        if max_tokens is not None and max_tokens < needed:
            raise _too_small(max_tokens, needed)
        sampling = SamplingParams(temperature=req.temperature, seed=req.seed,
                                  grammar=planned.grammar)
        built = build_request(run.model, planned.tokens, max_tokens, sampling, planned.stop,
                              planned.media)
        run.submit(built)
        out = collect(run.generation)
        model_id = run.model.info.id
    finished = out.finished
    if finished is not None and finished.cause.cut:
        cause = finished.cause
        if cause is FinishCause.DRAIN:
            raise Draining("the server shut down before the JSON was complete; retry")
        if cause is FinishCause.DEADLINE:
            raise APIError(504, "the generation ran past REQUEST_TIMEOUT_S before the JSON was "
                           "complete", code="timeout")
        if cause is FinishCause.CONTEXT_FULL:
            raise APIError(400, "the text and its JSON do not fit the model's context before "
                           "the JSON was complete; send a shorter text", param="text",
                           code="context_length_exceeded")
        if needed > built.max_tokens:
            raise _too_small(built.max_tokens, needed)
        # The shortest JSON fitted, yet the model wrote on with nothing closing it
        # (STRUCTURED_BUDGET=0): naming `needed` would point at a budget already given.
        raise APIError(
            400, f"the output reached max_tokens ({built.max_tokens}) before the JSON was "
            "complete; raise max_tokens", param="max_tokens", code="output_truncated")
    data = parse_and_validate(out.text, schema)
    return {
        "object": "extract.result",
        "created": int(time.time()),
        "model": model_id,
        "latency_ms": round((time.perf_counter() - started) * 1000, 1),
        "data": data,
        "usage": usage(out.finished),
    }
