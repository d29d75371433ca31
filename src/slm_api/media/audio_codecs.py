"""Compressed audio (MP3, FLAC, Ogg Opus/Vorbis, WebM, M4A) decoded with PyAV, FFmpeg's
decoders: what browsers record (WebM/Opus from MediaRecorder, as Open WebUI uploads it) and
what people keep (MP3, M4A), read as faster-whisper reads audio.

Two bounds make FFmpeg safe to point at a client's bytes. The container is named from the
file's magic bytes and FFmpeg is told it, never left to probe: a probe would also try demuxers
such as HLS and concat, whose playlists open other URLs and files. And decoding stops as soon
as the samples pass the duration cap: a small low-bitrate file (8 kbit/s MP3: a megabyte an
hour) would otherwise expand to gigabytes of samples before any length check.
"""

from __future__ import annotations

import io

import av
import numpy as np

from slm_api.errors import InvalidRequest

# Our name for each container -> FFmpeg's demuxer for it.
DEMUXERS = {"mp3": "mp3", "flac": "flac", "ogg": "ogg", "webm": "matroska", "m4a": "mov"}
NAMES = "WAV, MP3, FLAC, Ogg, WebM or M4A"


def sniff_audio(raw: bytes) -> str | None:
    """The container of an audio file from its first bytes ("wav", "mp3", "flac", "ogg",
    "webm", "m4a"); None for anything else."""
    head = raw[:12]
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: Matroska, which WebM is
        return "webm"
    if head[4:8] == b"ftyp":
        return "m4a"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    return None


def decode_compressed(raw: bytes, kind: str, *, param: str, rate: int,
                      max_seconds: float) -> np.ndarray:
    """The first audio stream of a `kind` file (see DEMUXERS) as float32 mono at `rate`.
    More than `max_seconds` is a 400 `audio_too_long`, raised while decoding."""
    limit = int(max_seconds * rate)
    pieces: list[np.ndarray] = []
    n = 0
    try:
        with av.open(io.BytesIO(raw), format=DEMUXERS[kind]) as container:
            if not container.streams.audio:
                raise InvalidRequest(f"{param}: the {kind} file holds no audio stream",
                                     param=param, code="invalid_audio")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    pieces.append(out.to_ndarray().reshape(-1))
                    n += len(pieces[-1])
                if n > limit:
                    raise InvalidRequest(
                        f"{param}: the clip is longer than {max_seconds:g} s; at most "
                        f"{max_seconds:g} s of audio are accepted (MAX_AUDIO_SECONDS)",
                        param=param, code="audio_too_long")
            for out in resampler.resample(None):
                pieces.append(out.to_ndarray().reshape(-1))
    except av.FFmpegError as exc:
        raise InvalidRequest(f"{param} is not a {kind} file that can be read ({exc})",
                             param=param, code="invalid_audio") from None
    if not pieces:
        raise InvalidRequest(f"{param}: the {kind} file holds no sound", param=param,
                             code="invalid_audio")
    return np.concatenate(pieces).astype(np.float32, copy=False)


def declared_seconds(raw: bytes, kind: str) -> float | None:
    """What a compressed file's container says its length is (not checked against its
    frames: for display and budgets only; the cap is enforced while decoding)."""
    try:
        with av.open(io.BytesIO(raw), format=DEMUXERS[kind]) as container:
            if container.duration is not None:
                return round(container.duration / av.time_base, 3)
    except av.FFmpegError:
        pass
    return None
