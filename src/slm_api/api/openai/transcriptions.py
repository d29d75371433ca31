"""/v1/audio/transcriptions (OpenAI's speech-to-text, as the openai SDK and Open WebUI send it):
a multipart form whose audio becomes one `input_audio` part of a Turn with an instruction to
transcribe, answered by an audio-capable model; any other model is a 400 naming `file`.

The form is bounded before it is parsed: the body by MAX_MEDIA_REQUEST_BYTES (the route's
contract says it takes media), the parts by MAX_FORM_PARTS, the text fields by
MAX_FORM_FIELD_BYTES (Werkzeug refuses more with a 413), the audio by MAX_AUDIO_BYTES."""

from __future__ import annotations

import math
from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic import ValidationError

from slm_api.api.core.contract import contract
from slm_api.api.core.conversation import Turn, start_turn
from slm_api.api.core.media_parts import media_intake
from slm_api.api.core.run import collect
from slm_api.api.openai.protocol import Transcription, TranscriptionRequest
from slm_api.engine import SamplingParams
from slm_api.errors import APIError, SlmError
from slm_api.media.audio_codecs import NAMES as AUDIO_CONTAINERS
from slm_api.media.audio_codecs import sniff_audio
from slm_api.media.decode import audio_seconds

audio_bp = Blueprint("audio", __name__)

MAX_FORM_PARTS = 16  # the SDK sends at most seven fields and the file
# Each text field's bytes (the request model bounds them further: a prompt is at most 4 KiB).
# Werkzeug 3.1 also holds its multipart parse buffer to this limit while a file streams in
# 64 KiB reads, so a limit near 64 KiB refused every file larger than one read (a 2 s WAV)
# with a 413; Werkzeug's own default is 500 kB.
MAX_FORM_FIELD_BYTES = 512 * 1024
# OpenAI's transcription model names: clients send them by default (Open WebUI: whisper-1),
# and here they mean "the active model".
OPENAI_MODELS = frozenset({"whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"})
AUDIO_PART = "messages.0.content.1"  # where the Turn built here holds the upload
WINDOW_TOKENS = 448  # Whisper's decoder context (max_target_positions) per 30 s window


def _form() -> TranscriptionRequest:
    if request.mimetype != "multipart/form-data":
        raise APIError(400, "send the audio as multipart/form-data with a `file` part "
                       "(as the openai SDK does)", param="file", code="invalid_request")
    request.max_form_parts = MAX_FORM_PARTS
    request.max_form_memory_size = MAX_FORM_FIELD_BYTES
    upload = request.files.get("file")
    if upload is None:
        raise APIError(400, "file: the form has no `file` part", param="file")
    limit = media_intake().max_audio_bytes
    raw = upload.read(limit + 1)
    if len(raw) > limit:
        raise APIError(413, f"file: the audio is larger than this server's limit of {limit:,} "
                       "bytes (MAX_AUDIO_BYTES)", param="file", code="audio_too_large")
    fields: dict[str, Any] = {k: v for k, v in request.form.items()}
    try:
        return TranscriptionRequest.model_validate({**fields, "file": raw})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or None
        raise APIError(400, f"{where}: {first['msg']}", param=where,
                       code="invalid_value") from None


def _instruction(req: TranscriptionRequest) -> str:
    text = "Transcribe this audio verbatim. Reply with the transcript only."
    if req.language:
        text += f" The speech is in language {req.language!r}."
    if req.prompt:
        text += f" Context (earlier speech or spellings): {req.prompt}"
    return text


@audio_bp.post("/v1/audio/transcriptions")
@contract(access="api", body=TranscriptionRequest, response=Transcription, media=True,
          body_content_type="multipart/form-data", content_type=("application/json",
                                                                  "text/plain"))
def transcriptions() -> Response:
    """Transcribe audio (OpenAI's speech-to-text).

    A multipart form: `file` (WAV, MP3, FLAC, Ogg, WebM or M4A), `model`, `language`,
    `prompt`, `response_format` (json, text, verbose_json), `temperature`. Needs a model
    whose projector takes audio; any other is a 400 naming `file`."""
    req = _form()
    fmt = sniff_audio(req.file)
    if fmt is None:
        raise APIError(400, f"file: the audio is not {AUDIO_CONTAINERS}", param="file",
                       code="invalid_audio")
    part = media_intake().audio_bytes(req.file, fmt, param="file")
    seconds = audio_seconds(req.file)
    turn = Turn(model=None if req.model in OPENAI_MODELS else req.model,
                messages=[{"role": "user", "content": [
                    {"type": "text", "text": _instruction(req)}, part]}],
                sampling=SamplingParams(temperature=req.temperature),
                max_tokens=_token_budget(seconds), thinking=False)
    try:
        run = start_turn(turn)
        with run:
            text = (run.split(collect(run.generation).text)[0] or "").strip()
    except SlmError as exc:
        raise _named_file(exc) from None
    if req.response_format == "text":
        return Response(text + "\n", mimetype="text/plain")
    if req.response_format == "verbose_json":
        return jsonify({"task": "transcribe", "language": req.language or "",
                        "duration": seconds, "text": text, "segments": []})
    return jsonify({"text": text})


def _token_budget(seconds: float | None) -> int | None:
    """A transcript's most tokens: Whisper's decoder stops a 30 s window's transcript at
    WINDOW_TOKENS, and so does this route, so a model that loops (or a clip of noise) ends
    there instead of filling the context."""
    return None if seconds is None else WINDOW_TOKENS * max(1, math.ceil(seconds / 30))


def _named_file(exc: SlmError) -> SlmError:
    """The core names the upload by its place in the Turn built above; the client sent it as
    `file`, so the refusal names `file` (the codes stay the core's)."""
    where = exc.param or ""
    if exc.code == "context_length_exceeded" and where == "messages":
        # The instruction is a few dozen tokens: the clip is what does not fit.
        return APIError(exc.status, f"file: {exc.message} (a clip takes hundreds of tokens "
                        "per 30 s: send a shorter one)", param="file", code=exc.code)
    if not where.startswith(AUDIO_PART):
        return exc
    if exc.code == "model_without_audio_input":
        message = "file: " + exc.message.split(", and ", 1)[-1]
    else:
        message = "file" + exc.message[len(where):] if exc.message.startswith(where) \
            else f"file: {exc.message}"
    return APIError(exc.status, message, param="file", code=exc.code)
