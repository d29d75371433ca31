"""Fill-in-the-middle for every family (/infill, Ollama's `suffix`, OpenAI's `suffix`): the
model's FIM tokens or a 400 naming the client's field, and the prompt laid out by
prompting/infill.py with the model's tokenizer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from slm_api.engine.llama_model import LoadedModel
from slm_api.errors import APIError
from slm_api.prompting.infill import ExtraChunk, FimTokens, Window, infill_tokens


def require_fim(model: LoadedModel, param: str) -> FimTokens:
    """The model's FIM tokens; a 400 naming `param` (the field that asked for infill) when it
    has none. The message names the field itself: Ollama's error shape carries no `param`."""
    fim = model.fim
    if not fim.supported:
        raise APIError(
            400, f'{param}: "{model.info.id}" does not support insert (fill-in-the-middle): '
            f"its vocabulary has no {'/'.join(fim.missing)} token; load a code model with "
            "FIM tokens (Qwen2.5-Coder, StarCoder2, CodeGemma, DeepSeek-Coder...)",
            param=param, code="fim_not_supported")
    return fim


def fim_prompt(
    model: LoadedModel,
    params: Mapping[str, str],
    prefix: str,
    suffix: str,
    *,
    prompt: str = "",
    extra: Sequence[ExtraChunk] = (),
    window: Window | None = None,
) -> list[int]:
    """The FIM prompt's ids. `params` maps the builder's fields ("prefix", "suffix", "prompt",
    "extra") to the client's names, so a text longer than the context can hold is refused
    naming the field it came in."""
    fim = require_fim(model, params["suffix"])

    def tokenize(text: str, field: str | None) -> list[int]:
        # Client text never becomes control tokens: a prefix spelling <|fim_middle|> is text.
        return model.tokenize(text, add_special=False, parse_special=False,
                              param=params.get(field) if field else None)

    return infill_tokens(fim, tokenize, prefix, suffix, prompt=prompt, extra=extra,
                         window=window)
