"""/infill as llama-server answers it: the FIM prompt (api/core/infill.py) generated on the
shared engine, ended early by `n_indent` and `t_max_predict_ms` (prompting/infill_stop.py),
and shaped as llama-server's completion object or its stream of partial objects."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from slm_api.api.core.body import completion_budget
from slm_api.api.core.infill import fim_prompt
from slm_api.api.core.run import Run, build_request
from slm_api.api.infill.protocol import InfillRequest
from slm_api.engine import Chunk, FinishCause, Finished
from slm_api.errors import APIError
from slm_api.prompting.infill import ExtraChunk, Window
from slm_api.prompting.infill_stop import InfillStopper

PARAMS = {"prefix": "input_prefix", "suffix": "input_suffix", "prompt": "prompt",
          "extra": "input_extra"}


class InfillReply:
    def __init__(self, req: InfillRequest):
        self.req = req
        if req.n_predict == 0:
            raise APIError(400, "n_predict is 0: send -1 (up to the context) or a count above 0",
                           param="n_predict")
        budget = completion_budget(req.n_predict if req.n_predict >= 0 else None, "n_predict")
        self.run = Run(req.model)
        try:
            model = self.run.model
            info = model.info
            # llama-server's budget: prefix and suffix fit one batch, the files the rest of the
            # context less room for twice the tokens to predict.
            window = Window(n_batch=min(info.n_batch, info.n_ctx), n_ctx=info.n_ctx,
                            n_predict=budget or 0)
            extra = [ExtraChunk(text=f.text, filename=f.filename) for f in req.input_extra]
            self.prompt = fim_prompt(model, PARAMS, req.input_prefix, req.input_suffix,
                                     prompt=req.prompt, extra=extra, window=window)
            if len(self.prompt) >= info.n_ctx:
                # Prefix, suffix and files are cut to fit: only `prompt` is taken whole.
                raise APIError(400, f"the FIM prompt has {len(self.prompt)} tokens, more than "
                               f"this model's context of {info.n_ctx} allows: shorten prompt",
                               param="prompt", code="context_length_exceeded")
            self.prompt_text = model.detokenize(self.prompt, special=True)
            self.run.submit(build_request(model, self.prompt, budget, req.sampling(),
                                          req.stop))
        except BaseException:
            self.run.close()
            raise
        self.stopper = InfillStopper(req.n_indent, req.t_max_predict_ms)
        self.model_id = model.info.id
        self.submitted = time.monotonic()

    def _pieces(self) -> Iterator[tuple[str, tuple[int, ...]]]:
        """The output as it may go out; once the stopper ends it, the generation is aborted
        and drained (its totals are then known), its text dropped."""
        generation = self.run.generation
        assert generation is not None
        for _, chunk in generation:
            if not isinstance(chunk, Chunk) or self.stopper.done:
                continue
            text = self.stopper.feed(chunk.text)
            if self.stopper.done:
                generation.abort()
            if text or chunk.token_ids:
                yield text, chunk.token_ids

    def complete(self) -> dict[str, Any]:
        with self.run:
            texts, ids = [], []
            for text, tokens in self._pieces():
                texts.append(text)
                ids.extend(tokens)
        return self._final("".join(texts), ids)

    def stream(self) -> Iterator[dict[str, Any]]:
        ids: list[int] = []
        try:
            for text, tokens in self._pieces():
                ids.extend(tokens)
                yield {"index": 0, "content": text,
                       "tokens": list(tokens) if self.req.return_tokens else [],
                       "stop": False, "id_slot": -1, "tokens_predicted": len(ids),
                       "tokens_evaluated": len(self.prompt)}
        finally:
            self.run.close()
        yield self._final("", ids)

    def _final(self, content: str, ids: list[int]) -> dict[str, Any]:
        finished = self.run.result
        req = self.req
        out: dict[str, Any] = {
            "index": 0,
            "content": content,
            "tokens": ids if req.return_tokens else [],
            "id_slot": -1,
            "stop": True,
            "model": self.model_id,
            "tokens_predicted": finished.completion_tokens if finished else len(ids),
            "tokens_evaluated": len(self.prompt),
            "generation_settings": {
                "n_predict": req.n_predict, "temperature": req.temperature,
                "top_k": req.top_k, "top_p": req.top_p, "min_p": req.min_p, "seed": req.seed,
                "n_indent": req.n_indent, "t_max_predict_ms": req.t_max_predict_ms,
                "stop": req.stop},
            "prompt": self.prompt_text,
            "has_new_line": self.stopper.seen_newline,
            "truncated": False,
            "stop_type": self._stop_type(finished),
            "stopping_word": (finished.stop_sequence or "") if finished else "",
            "tokens_cached": (finished.cached_tokens if finished else 0) + len(ids),
            "timings": self._timings(finished),
        }
        if req.return_tokens:
            # This server's addition: the prompt's ids, to check a FIM layout token by token.
            out["prompt_tokens"] = list(self.prompt)
        return _select(out, req.response_fields) if req.response_fields else out

    def _stop_type(self, finished: Finished | None) -> str:
        if self.stopper.done or finished is None:
            return "limit"
        return {FinishCause.STOP_SEQUENCE: "word", FinishCause.STOP: "eos"}.get(finished.cause,
                                                                               "limit")

    def _timings(self, finished: Finished | None) -> dict[str, Any]:
        elapsed_ms = (time.monotonic() - self.submitted) * 1000.0
        ttft_ms = min(elapsed_ms, ((finished.time_to_first_token_s if finished else None)
                                   or 0.0) * 1000.0)
        cached = finished.cached_tokens if finished else 0
        prompt_n = max(0, (finished.prompt_tokens if finished else len(self.prompt)) - cached)
        predicted_n = finished.completion_tokens if finished else 0
        predicted_ms = max(0.0, elapsed_ms - ttft_ms)
        return {
            "cache_n": cached,
            "prompt_n": prompt_n,
            "prompt_ms": ttft_ms,
            "prompt_per_token_ms": ttft_ms / prompt_n if prompt_n else 0.0,
            "prompt_per_second": 1000.0 * prompt_n / ttft_ms if ttft_ms else 0.0,
            "predicted_n": predicted_n,
            "predicted_ms": predicted_ms,
            "predicted_per_token_ms": predicted_ms / predicted_n if predicted_n else 0.0,
            "predicted_per_second": 1000.0 * predicted_n / predicted_ms if predicted_ms else 0.0,
        }


def _select(obj: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    """llama-server's `response_fields`: each path that exists ("timings/prompt_n"), under
    the path as its key."""
    out: dict[str, Any] = {}
    for path in paths:
        current: Any = obj
        for key in path.split("/"):
            if not isinstance(current, dict) or key not in current:
                break
            current = current[key]
        else:
            out[path] = current
    return out
