"""Images and audio in a chat turn, for the conversation core (issue 38).

Every family hands media to the core as OpenAI content parts (`image_url` with a `data:` URL,
`input_audio` with base64): remote URLs were inlined at the family's edge (media/remote.py) or
refused there. Here each part is decoded (media/decode.py) and replaced by a marker the chat
template renders as text where the part was; the rendered prompt is then cut at the markers and
tokenized with the media by the model's projector. The markers carry a per-request nonce, so a
client's text can never open an image slot.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from flask import Flask, current_app

from slm_api.api.core.media_parts import media_in, refuse_unsupported_media
from slm_api.api.core.planner import Plan, RawTurn, Turn, plan
from slm_api.engine import MediaSpan
from slm_api.engine.llama_model import LoadedModel
from slm_api.errors import APIError
from slm_api.media.decode import (
    AUDIO_RATE,
    Audio,
    Image,
    decode_audio,
    decode_image,
)
from slm_api.media.inline import decode_base64, split_data_url
from slm_api.plumbing import state

_KINDS = {"image_url": "image", "input_audio": "audio"}
_DECODE_SLOTS = "slm_media_decode_slots"


def decode_slots(app: Flask | None = None) -> threading.BoundedSemaphore:
    """The app's bound on images and sounds decoded at once, across requests.

    A decode is CPU work on the request's thread and holds its full-size pixels meanwhile (a
    160 KB PNG of 7000 x 7000: 1.4 s and 196 MB): eight requests of two such pictures took
    3.1 GB at once, with every request thread free to add more. More decodes at once than
    cores only adds memory, and the decode loop needs cores too: half of them, 1 to 4."""
    extensions = (app if app is not None else current_app).extensions
    slots = extensions.get(_DECODE_SLOTS)
    if slots is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
        slots = extensions.setdefault(_DECODE_SLOTS,
                                      threading.BoundedSemaphore(max(1, min(4, cores // 2))))
    return slots


def take_media(messages: list[dict[str, Any]], model: LoadedModel, names: Sequence[str] = ()
               ) -> tuple[list[dict[str, Any]], dict[str, Image | Audio]]:
    """`messages` with each image or audio part replaced by a text part holding a marker, and
    the decoded media by marker. A model that does not read a part's kind gets a 400 naming the
    part, before anything is decoded or submitted. `names`: each media part's request field,
    in order, where the request has no messages to name them by (a raw prompt)."""
    media: dict[str, Image | Audio] = {}
    if not any(_parts_with_media(messages)):
        return messages, media
    refuse_unsupported_media(model, messages, names)
    _refuse_too_many_images(messages, state.settings().max_images)
    nonce = secrets.token_hex(8)
    heard = 0.0  # seconds of audio decoded so far
    out = []
    for i, msg in enumerate(messages):
        content = msg.get("content") if isinstance(msg, dict) else None
        if not isinstance(content, list) or not any(
                isinstance(p, dict) and p.get("type") in _KINDS for p in content):
            out.append(msg)
            continue
        parts = []
        for j, part in enumerate(content):
            kind = _KINDS.get(part.get("type")) if isinstance(part, dict) else None
            if kind is None:
                parts.append(part)
                continue
            where = f"messages.{i}.content.{j}"
            param = names[len(media)] if names else (
                f"{where}.image_url.url" if kind == "image" else f"{where}.input_audio")
            marker = f"<|media-{nonce}-{len(media)}|>"
            with decode_slots():
                media[marker] = _decode(kind, part, param)
            heard += _refuse_too_much_audio(media[marker], heard, param)
            parts.append({"type": "text", "text": marker})
        out.append({**msg, "content": parts})
    return out, media


def _refuse_too_many_images(messages: list[dict[str, Any]], max_images: int) -> None:
    # The edge counts a request body's images; the turn decoded here may hold more (a stored
    # Responses conversation brings every earlier request's), and each costs up to
    # MAX_IMAGE_PIXELS of decoding (1.4 s and 150 MB for a 160 KB PNG of 7000 x 7000).
    images = [where for where, kind in media_in(messages) if kind == "image"]
    if len(images) > max_images:
        where = f"{images[max_images]}.image_url.url"
        raise APIError(400, f"{where}: this conversation holds {len(images)} images, more "
                       f"than the {max_images} one request may carry (MAX_IMAGES); start a "
                       "new conversation or send fewer", param=where, code="too_many_images")


def _refuse_too_much_audio(decoded: Image | Audio, heard: float, where: str) -> float:
    # Each clip is capped at MAX_AUDIO_SECONDS, their number was not: a 32 MiB body holds
    # ~400 WAVs of 600 s at 100 Hz (80 KB each as base64), each 38 MB once resampled to 16 kHz
    # float, all held until the prompt is tokenized. The clips of one turn share the cap.
    if not isinstance(decoded, Audio):
        return 0.0
    seconds = decoded.n_samples / AUDIO_RATE
    cap = state.settings().max_audio_seconds
    if heard + seconds > cap:
        raise APIError(400, f"{where}: the audio of this conversation runs past {cap:g} s in "
                       "all, the most one request may carry (MAX_AUDIO_SECONDS)",
                       param=where, code="audio_too_long")
    return seconds


def _parts_with_media(messages: list[dict[str, Any]]) -> list[bool]:
    return [isinstance(p, dict) and p.get("type") in _KINDS
            for m in messages if isinstance(m, dict) and isinstance(m.get("content"), list)
            for p in m["content"]]


def _decode(kind: str, part: dict[str, Any], param: str) -> Image | Audio:
    settings = state.settings()
    if kind == "image":
        spec = part.get("image_url")
        url = spec.get("url") if isinstance(spec, dict) else spec
        if not isinstance(url, str) or not url.startswith("data:"):
            raise APIError(400, f"{param} must be a data: URL with base64 image bytes (remote "
                           "URLs are fetched only from hosts the operator allows)", param=param)
        _, b64 = split_data_url(url, param=param)
        raw = decode_base64(b64, param=param, max_bytes=settings.max_image_bytes)
        return decode_image(raw, param=param, max_pixels=settings.max_image_pixels)
    spec = part.get("input_audio")
    if not isinstance(spec, dict) or not isinstance(spec.get("data"), str):
        raise APIError(400, f"{param} must be {{'data': <base64>, 'format': 'wav'}}",
                       param=param)
    raw = decode_base64(spec["data"], param=param + ".data", max_bytes=settings.max_audio_bytes,
                        what="audio")
    # The bytes name their container; `format` (OpenAI's "wav" | "mp3") was checked at the edge.
    return decode_audio(raw, param=param, max_seconds=settings.max_audio_seconds)


def tokenize_prompt(model: LoadedModel, prompt: str, media: dict[str, Image | Audio],
                    param: str = "messages") -> tuple[list[int], tuple[MediaSpan, ...]]:
    """The rendered prompt's tokens, with its media where their markers are."""
    if not media:
        return model.tokenize(prompt, param=param), ()
    pattern = "(" + "|".join(re.escape(k) for k in media) + ")"
    parts: list[str | Image | Audio] = []
    for k, piece in enumerate(re.split(pattern, prompt)):
        if k % 2:
            parts.append(media[piece])
        elif piece:
            parts.append(piece)
    if not any(isinstance(p, (Image, Audio)) for p in parts):
        raise APIError(400, "the chat template dropped this request's images", param=param)
    text = "".join(p for p in parts if isinstance(p, str))
    if len(text) > model.info.n_ctx * 4:
        # The projector tokenizes under the lock every image request's tokenizing and encoding
        # takes (31 MB of text beside an image: 11 s, a neighbour's picture waiting all along),
        # and the prompt's length is judged only after. The text-only tokenizer refuses text
        # longer than the context could hold from its length, before tokenizing; text that
        # could fit is short enough to be tokenized twice.
        model.tokenize(text, param=param)
    return model.tokenize_media(parts, param=param)


def plan_with_media(model: LoadedModel, turn: Turn | RawTurn) -> Plan:
    """The turn's plan, its images and sounds in it: a model that cannot read them refuses
    here; each part becomes a marker the template renders as text, and the planned prompt is
    tokenized with the media where the markers are (the chat core, /api/generate, and a raw
    prompt given as content parts: /v1/completions' multimodal prompt)."""
    if isinstance(turn, RawTurn):
        if not _is_parts(turn.prompt):
            return plan(model.chat, turn, model.tokenize)
        # A raw prompt's parts as one message's: the same check, decode and markers as chat's;
        # the prompt is their text joined, no template around it.
        messages, media = take_media([{"role": "user", "content": turn.prompt}], model,
                                     turn.media_names)
        text = "".join(p["text"] for p in messages[0]["content"])
        turn = replace(turn, prompt=text)
    else:
        messages, media = take_media(turn.messages, model)
        turn = replace(turn, messages=messages)
    if not media:
        return plan(model.chat, turn, model.tokenize)
    spans: list[MediaSpan] = []

    def tokenize(text: str, param: str = "messages") -> list[int]:
        tokens, found = tokenize_prompt(model, text, media, param)
        spans[:] = found
        return tokens

    planned = plan(model.chat, turn, tokenize)
    return replace(planned, media=tuple(spans))


def _is_parts(prompt: object) -> bool:
    return isinstance(prompt, list) and bool(prompt) and isinstance(prompt[0], dict)
