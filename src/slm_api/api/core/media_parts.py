"""Images and audio at the request edge, in the one shape the core takes (OpenAI content
parts inside `Turn.messages`):

    {"type": "image_url", "image_url": {"url": "data:<mime>;base64,<b64>", "detail": ...}}
    {"type": "input_audio", "input_audio": {"data": "<b64>", "format": "wav" | "mp3"}}

Every family converts its own shape (Anthropic `image` blocks, Responses `input_image`, Ollama
`images`) through a `MediaIntake`, which counts and sizes each item against this server's
limits, checks base64 and the bytes' format, and turns a remote URL into a data URL
(slm_api/media/remote.py) before the Turn is built, each refusal naming the family's own field.

`refuse_unsupported_media` is the seam with the core: the core calls it once it has pinned the
model, so a text-only model asked about an image is a 400 before anything is rendered or
submitted. (The vision engine owns it once it lands; the check reads `model.media_kinds`.)
"""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from slm_api.config import Settings
from slm_api.errors import APIError
from slm_api.media.inline import (
    AUDIO_FORMATS,
    IMAGE_TYPES,
    checked_image,
    data_url,
    decode_base64,
    image_data_url,
)
from slm_api.media.remote import RemotePolicy, fetch_image
from slm_api.plumbing import state

DETAILS = ("auto", "low", "high")
# The kind of media each part type carries (what `model.media_kinds` must hold).
PART_KINDS = {"image_url": "image", "input_audio": "audio"}


@dataclass
class MediaIntake:
    """One request's media, counted and checked as the family converts it."""

    max_images: int
    max_image_bytes: int
    max_audio_bytes: int
    remote: RemotePolicy
    images: int = 0
    # When this request's remote fetching must end (time.monotonic()), set by its first fetch:
    # REMOTE_IMAGE_TIMEOUT_S bounds all of them together, since they run in turn on its thread.
    remote_deadline: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> MediaIntake:
        return cls(settings.max_images, settings.max_image_bytes, settings.max_audio_bytes,
                   RemotePolicy(settings.remote_image_hosts, settings.remote_image_allow_private,
                                settings.remote_image_timeout_s, settings.max_image_bytes))

    def _count(self, param: str) -> None:
        self.images += 1
        if self.images > self.max_images:
            raise APIError(400, f"{param}: more than {self.max_images} images in one request "
                           "(MAX_IMAGES)", param=param, code="too_many_images")

    def image_url(self, url: Any, *, param: str, detail: Any = None,
                  detail_param: str | None = None) -> dict[str, Any]:
        """An image given by URL (data: or http(s)) as the core's part."""
        self._count(param)
        if not isinstance(url, str) or not url:
            raise APIError(400, f"{param}: an image needs a URL (a base64 data: URL)",
                           param=param, code="invalid_image_url")
        if detail is not None and detail not in DETAILS:
            where = detail_param or f"{param}.detail"
            raise APIError(400, f"{where}: detail must be one of {', '.join(DETAILS)}",
                           param=where, code="invalid_value")
        scheme = url.split(":", 1)[0].lower()
        if scheme == "data":
            url = image_data_url(url, param=param, max_bytes=self.max_image_bytes)
        elif scheme in ("http", "https"):
            if self.remote_deadline is None:
                self.remote_deadline = time.monotonic() + self.remote.timeout_s
            url = fetch_image(url, self.remote, param=param, deadline=self.remote_deadline)
        else:
            raise APIError(400, f"{param}: an image URL must be a base64 data: URL (or an "
                           "http(s) URL where the operator allows remote images)",
                           param=param, code="invalid_image_url")
        return _image_part(url, detail)

    def image_base64(self, data: Any, *, param: str, media_type: str | None = None,
                     media_param: str | None = None) -> dict[str, Any]:
        """An image sent as bare base64 (Ollama's `images`, Anthropic's base64 source), with
        the media type its sender claims where it claims one."""
        self._count(param)
        if media_type is not None and media_type not in IMAGE_TYPES:
            where = media_param or param
            raise APIError(400, f"{where}: {media_type!r} is not one of "
                           f"{', '.join(IMAGE_TYPES)}", param=where, code="invalid_image")
        if not isinstance(data, str):
            raise APIError(400, f"{param}: an image must be base64 text", param=param,
                           code="invalid_image")
        mime, payload = checked_image(data, param=param, max_bytes=self.max_image_bytes)
        return _image_part(data_url(mime, payload))

    def audio(self, data: Any, fmt: Any, *, param: str) -> dict[str, Any]:
        """An `input_audio` part checked: base64, its size, a format the core decodes."""
        if fmt not in AUDIO_FORMATS:
            raise APIError(400, f"{param}.format: audio format must be one of "
                           f"{', '.join(AUDIO_FORMATS)}", param=f"{param}.format",
                           code="invalid_audio")
        if not isinstance(data, str):
            raise APIError(400, f"{param}.data: audio must be base64 text",
                           param=f"{param}.data", code="invalid_audio")
        decode_base64(data, param=f"{param}.data", max_bytes=self.max_audio_bytes, what="audio")
        return audio_part(data, fmt)

    def audio_bytes(self, raw: bytes, fmt: str, *, param: str) -> dict[str, Any]:
        """An audio file's bytes (a multipart upload) as an `input_audio` part."""
        if len(raw) > self.max_audio_bytes:
            raise APIError(413, f"{param}: the audio is {len(raw):,} bytes, above this "
                           f"server's limit of {self.max_audio_bytes:,} (MAX_AUDIO_BYTES)",
                           param=param, code="audio_too_large")
        return audio_part(base64.b64encode(raw).decode("ascii"), fmt)

    def openai_messages(self, messages: list[dict[str, Any]], prefix: str = "messages"
                        ) -> list[dict[str, Any]]:
        """OpenAI chat messages with their image and audio parts checked (and remote images
        inlined); other parts pass as they are."""
        out = []
        for i, msg in enumerate(messages):
            content = msg.get("content")
            if isinstance(content, list):
                parts = [self.openai_part(part, f"{prefix}.{i}.content.{j}")
                         for j, part in enumerate(content)]
                msg = {**msg, "content": parts}
            out.append(msg)
        return out

    def openai_part(self, part: Any, where: str) -> Any:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "image_url":
            spec = part.get("image_url")
            if isinstance(spec, str):  # older LangChain sends the URL itself
                return self.image_url(spec, param=f"{where}.image_url")
            if not isinstance(spec, dict):
                raise APIError(400, f"{where}.image_url must be an object with a url",
                               param=f"{where}.image_url", code="invalid_image_url")
            return self.image_url(spec.get("url"), param=f"{where}.image_url.url",
                                  detail=spec.get("detail"),
                                  detail_param=f"{where}.image_url.detail")
        if kind == "input_audio":
            spec = part.get("input_audio")
            if not isinstance(spec, dict):
                raise APIError(400, f"{where}.input_audio must be an object with data and "
                               "format", param=f"{where}.input_audio", code="invalid_audio")
            return self.audio(spec.get("data"), spec.get("format"),
                              param=f"{where}.input_audio")
        return part


def media_intake() -> MediaIntake:
    """This request's intake, from the app's settings."""
    return MediaIntake.from_settings(state.settings())


def _image_part(url: str, detail: Any = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"url": url}
    if detail is not None:
        spec["detail"] = detail
    return {"type": "image_url", "image_url": spec}


def audio_part(data: str, fmt: str) -> dict[str, Any]:
    return {"type": "input_audio", "input_audio": {"data": data, "format": fmt}}


def media_in(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(where, kind) of every image and audio part in OpenAI chat messages."""
    found = []
    for i, msg in enumerate(messages):
        content = msg.get("content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                kind = PART_KINDS.get(part.get("type")) if isinstance(part, dict) else None
                if kind is not None:
                    found.append((f"messages.{i}.content.{j}", kind))
    return found


def refuse_unsupported_media(model: Any, messages: list[dict[str, Any]],
                             names: Sequence[str] = ()) -> None:
    """A 400 naming the first part whose kind `model` cannot take (no projector, or one
    without audio): the core's check, before the prompt is rendered. `names`: the request
    field of each media part in order, where the request had no messages (a raw prompt)."""
    found = media_in(messages)
    if names:
        found = [(name, kind) for name, (_, kind) in zip(names, found, strict=True)]
    for where, kind in found:
        refuse_unsupported_kind(model, kind, where)


def refuse_unsupported_kind(model: Any, kind: str, where: str) -> None:
    """A 400 naming `where` when `model` cannot take `kind` ("image", "audio")."""
    kinds = getattr(model, "media_kinds", frozenset())
    if kind not in kinds:
        name = getattr(getattr(model, "info", None), "id", None) or "this model"
        why = (f"its projector takes only {' and '.join(sorted(kinds))}" if kinds
               else "it has no multimodal projector")
        raise APIError(
            400, f"{where} is {'an image' if kind == 'image' else 'audio'}, and the model "
            f"{name!r} does not take {kind} input ({why}); load a model that does",
            param=where, code=f"model_without_{kind}_input")
