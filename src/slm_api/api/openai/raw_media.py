"""Images in a raw prompt, as llama.cpp's server takes them on /v1/completions (issue 38):
`"prompt": {"prompt_string": "... <__media__> ...", "multimodal_data": ["<base64>", ...]}`,
alone or in a list beside plain strings.

The object declares its images; the marker only says where each one sits. So the markers in
`prompt_string` must be exactly as many as the items (else a 400 naming the field, before
anything is decoded), and they are cut out here: the core gets content parts (text, image,
text, ...) and marks the images with its own per-request markers, so no text a client writes
(a plain string prompt with `<__media__>` in it, another prompt of the list) opens an image
slot. Each item goes through the one media intake (api/core/media_parts.py: base64, size,
format, MAX_IMAGES per request) and the core's one decode, as chat's `image_url` parts do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slm_api.api.core.body import one_or_many
from slm_api.api.core.media_parts import MediaIntake, media_intake
from slm_api.api.openai.protocol import MediaPrompt
from slm_api.errors import APIError

# libmtmd's default marker (mtmd_default_marker()), the one llama-server's clients write; its
# server may pick another (LLAMA_MEDIA_MARKER), this one never does.
MEDIA_MARKER = "<__media__>"


@dataclass(frozen=True)
class RawPrompt:
    """One prompt of a completions request, as the planner reads it (`RawTurn.prompt`)."""

    prompt: str | list[int] | list[dict[str, Any]]
    # The prompt as the client wrote it (what `echo` repeats); None: token ids.
    text: str | None
    # Each image's request field, in order (`prompt.multimodal_data.0`).
    names: tuple[str, ...] = ()


def raw_prompts(prompt: Any, suffix: str | None = None) -> list[RawPrompt]:
    """A completions request's `prompt` (a string, token ids, a prompt object, or a list of
    them) as one RawPrompt per prompt. Every object's markers are counted first, then every
    image checked and counted, all before any model is pinned for them."""
    single = isinstance(prompt, MediaPrompt)
    items = [prompt] if single else one_or_many(prompt)
    listed = not single and isinstance(prompt, list) and not isinstance(prompt[0], int)
    params = [f"prompt.{i}" if listed else "prompt" for i in range(len(items))]
    pieces = [_pieces(item, param, suffix) if isinstance(item, MediaPrompt) else None
              for item, param in zip(items, params, strict=True)]
    intake = media_intake()
    out = []
    for item, param, split in zip(items, params, pieces, strict=True):
        if not isinstance(item, MediaPrompt):
            out.append(RawPrompt(item, item if isinstance(item, str) else None))
        elif not item.multimodal_data:
            out.append(RawPrompt(item.prompt_string, item.prompt_string))
        else:
            assert split is not None
            out.append(_media_prompt(item, split, param, intake))
    return out


def _pieces(item: MediaPrompt, param: str, suffix: str | None) -> list[str]:
    """`prompt_string` cut at its markers: one piece more than the object has images."""
    data = item.multimodal_data or []
    pieces = item.prompt_string.split(MEDIA_MARKER)
    if len(pieces) - 1 != len(data):
        raise APIError(
            400, f"{param}.prompt_string has {len(pieces) - 1} {MEDIA_MARKER} marker(s) and "
            f"{param}.multimodal_data {len(data)} item(s): write one marker per item, where "
            "that item sits, in order", param=f"{param}.multimodal_data",
            code="media_marker_mismatch")
    if data and suffix:
        raise APIError(400, "suffix (fill-in-the-middle) takes a text prompt: a prompt with "
                       "multimodal_data has no place for the gap", param="suffix")
    return pieces


def _media_prompt(item: MediaPrompt, pieces: list[str], param: str,
                  intake: MediaIntake) -> RawPrompt:
    """The object as content parts: text, image, text, ... in order."""
    parts: list[dict[str, Any]] = []
    names = []
    for k, b64 in enumerate(item.multimodal_data or []):
        name = f"{param}.multimodal_data.{k}"
        if pieces[k]:
            parts.append({"type": "text", "text": pieces[k]})
        if b64[:5].lower() == "data:":
            # llama-server decodes these items as bare base64 and fails on a URL's prefix.
            raise APIError(400, f"{name}: multimodal_data items are bare base64 (as "
                           "llama-server takes them), not data: URLs", param=name,
                           code="invalid_image")
        parts.append(intake.image_base64(b64, param=name))
        names.append(name)
    if pieces[-1]:
        parts.append({"type": "text", "text": pieces[-1]})
    return RawPrompt(parts, item.prompt_string, tuple(names))
