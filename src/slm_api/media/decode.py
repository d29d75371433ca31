"""Images and audio decoded for a model's projector: RGB pixels and 16 kHz mono samples.

Pillow does the image formats (PNG, JPEG, WebP, GIF's first frame), with EXIF orientation
applied as a phone's viewer does; the stdlib `wave` reads WAV. Every refusal is a 400 naming the
field the client sent (`param`). Nothing here imports Flask or llama_cpp.
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
import wave
from dataclasses import dataclass

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from slm_api.errors import InvalidRequest
from slm_api.media.audio_codecs import NAMES, declared_seconds, decode_compressed, sniff_audio

FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
# Pillow allocates pixels in blocks of 16 MB, under glibc's largest mmap threshold (32 MB): once
# freed they stay in the decoding thread's malloc arena, so every request thread that once
# decoded a large picture kept ~200 MB. Blocks above the threshold are mapped, and unmapped
# when the picture is freed (8 decodes of 7000 x 7000 in turn: 225 MB kept before, 6 MB now).
PILImage.core.set_block_size(64 * 1024 * 1024)
# What passes MAX_IMAGE_PIXELS is scaled to fit this box: every projector resizes to its own
# few hundred pixels a side (SmolVLM's tiles are 512, LLaVA's 336), so more only costs memory.
WORK_SIDE = 2048
MAX_JPEG_SCANS = 50  # progressive JPEGs from libjpeg, browsers and mozjpeg: 6 to 20
_SOS = b"\xff\xda"  # a JPEG's start-of-scan marker
AUDIO_RATE = 16_000  # what every audio projector libmtmd supports reads (Whisper's rate)


@dataclass(frozen=True)
class Image:
    """Row-major RGB888 pixels; `digest` names the picture (the prompt cache's key for it)."""

    rgb: bytes
    width: int
    height: int
    digest: str


@dataclass(frozen=True)
class Audio:
    """PCM float32 mono samples at AUDIO_RATE; `digest` names the sound."""

    pcm: bytes
    n_samples: int
    digest: str


def _digest(kind: bytes, data: bytes, *dims: int) -> str:
    h = hashlib.sha256(kind)
    h.update(struct.pack(f"<{len(dims)}q", *dims))
    h.update(data)
    return h.hexdigest()


def decode_image(raw: bytes, *, param: str, max_pixels: int) -> Image:
    """`raw` (PNG, JPEG, WebP or GIF) as RGB pixels, upright, at most WORK_SIDE a side. A
    picture declaring more than `max_pixels` is refused from its header, before decoding."""
    try:
        with warnings.catch_warnings():
            # Pillow warns at half its own bomb limit and raises past it: ours is lower.
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            img = PILImage.open(io.BytesIO(raw), formats=FORMATS)
            width, height = img.size
            if width * height > max_pixels:
                raise InvalidRequest(
                    f"the image at {param} is {width} x {height} pixels; at most {max_pixels} "
                    "pixels are accepted (MAX_IMAGE_PIXELS)", param=param)
            scans = raw.count(_SOS) if img.format == "JPEG" else 0
            if scans > MAX_JPEG_SCANS:
                # Each scan is another pass over every block: 2,000 scans of 4000 x 4000 in
                # 156 KB took 31 s. Inside the entropy-coded data 0xFF is always followed by
                # 0x00 or a restart marker, so each 0xFF 0xDA starts a scan (or one of an EXIF
                # thumbnail's, a few more).
                raise InvalidRequest(
                    f"the image at {param} is a JPEG of {scans} scans; at most "
                    f"{MAX_JPEG_SCANS} are accepted (a camera's progressive JPEG has about 10)",
                    param=param)
            if img.format == "JPEG":
                # JPEG decodes at 1/2, 1/4 or 1/8 scale for free: a 48 MP photo is read at
                # the size it will be used at, not in full.
                img.draft("RGB", (WORK_SIDE, WORK_SIDE))
            img.seek(0)  # a GIF's (or animated WebP's) first frame
            # Scaled before it is turned upright, in place: exif_transpose's default returns a
            # copy, a second full-size picture (196 MB more for 7000 x 7000) held at the peak.
            # The box is square, so the scale does not depend on the orientation.
            img.thumbnail((WORK_SIDE, WORK_SIDE), PILImage.Resampling.BICUBIC)
            ImageOps.exif_transpose(img, in_place=True)
            rgb = _flatten(img)
    except InvalidRequest:
        raise
    except PILImage.DecompressionBombError as exc:  # past Pillow's own limit, at open
        raise InvalidRequest(f"the image at {param} declares more than {max_pixels} pixels, "
                             "the most accepted (MAX_IMAGE_PIXELS)", param=param) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InvalidRequest(f"{param} is not a PNG, JPEG, WebP or GIF image that can be "
                             f"read: {exc}", param=param) from exc
    w, h = rgb.size
    if w < 1 or h < 1:
        raise InvalidRequest(f"the image at {param} has no pixels", param=param)
    data = rgb.tobytes()
    return Image(rgb=data, width=w, height=h, digest=_digest(b"rgb", data, w, h))


def _flatten(img: PILImage.Image) -> PILImage.Image:
    # Transparency goes onto white, as a browser shows a logo, rather than onto black.
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        return PILImage.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def decode_audio(raw: bytes, *, param: str, max_seconds: float) -> Audio:
    """An audio file as float32 mono at AUDIO_RATE, its container told by its bytes: WAV
    (PCM 8/16/24/32-bit) here, MP3, FLAC, Ogg, WebM and M4A through FFmpeg
    (media/audio_codecs.py). A clip longer than `max_seconds` is refused before its samples
    are converted (WAV) or while they are decoded (the others)."""
    kind = sniff_audio(raw)
    if kind is None:
        raise InvalidRequest(f"{param}: the audio is not {NAMES}", param=param,
                             code="invalid_audio")
    if kind != "wav":
        pcm = decode_compressed(raw, kind, param=param, rate=AUDIO_RATE,
                                max_seconds=max_seconds).astype("<f4").tobytes()
        return Audio(pcm=pcm, n_samples=len(pcm) // 4, digest=_digest(b"pcm", pcm, AUDIO_RATE))
    data, channels, width, rate = _read_wav(raw, param)
    seconds = len(data) / (channels * width) / rate
    if seconds > max_seconds:
        raise InvalidRequest(f"{param}: the clip is {seconds:,.1f} s long; at most "
                             f"{max_seconds:g} s of audio are accepted (MAX_AUDIO_SECONDS)",
                             param=param, code="audio_too_long")
    samples = _pcm_to_float(data, width, param)
    samples = samples[: len(samples) // channels * channels].reshape(-1, channels).mean(axis=1)
    if rate != AUDIO_RATE and len(samples):
        n_out = max(1, round(len(samples) * AUDIO_RATE / rate))
        samples = np.interp(np.linspace(0, len(samples) - 1, n_out),
                            np.arange(len(samples)), samples)
    pcm = samples.astype("<f4").tobytes()
    return Audio(pcm=pcm, n_samples=len(pcm) // 4, digest=_digest(b"pcm", pcm, AUDIO_RATE))


def audio_seconds(raw: bytes) -> float | None:
    """An audio file's length in seconds: a WAV's frames present, what another container
    declares; None if it cannot be read."""
    kind = sniff_audio(raw)
    if kind is None:
        return None
    if kind != "wav":
        return declared_seconds(raw, kind)
    try:
        data, channels, width, rate = _read_wav(raw, "file")
    except InvalidRequest:
        return None
    return round(len(data) / (channels * width) / rate, 3)


def _read_wav(raw: bytes, param: str) -> tuple[bytes, int, int, int]:
    """The sample bytes, channels, sample width and rate of a WAV file. The bytes are the
    frames present, not the header's count: a streamed WAV's header may say 0 or 4 GB."""
    try:
        with wave.open(io.BytesIO(raw), "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            data = w.readframes(w.getnframes())
    except (wave.Error, EOFError, OSError) as exc:
        raise InvalidRequest(f"{param} is not a WAV file that can be read: {exc}",
                             param=param) from exc
    if rate < 1 or channels < 1 or width < 1:
        raise InvalidRequest(f"{param}: the WAV header gives no sample rate, channels or "
                             "sample width", param=param, code="invalid_audio")
    return data, channels, width, rate


def _pcm_to_float(data: bytes, width: int, param: str) -> np.ndarray:
    if width == 1:
        return (np.frombuffer(data, np.uint8).astype(np.float32) - 128.0) / 128.0
    if width == 2:
        return np.frombuffer(data, "<i2").astype(np.float32) / 32768.0
    if width == 3:
        b = np.frombuffer(data[: len(data) // 3 * 3], np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        return (np.where(v >= 1 << 23, v - (1 << 24), v)).astype(np.float32) / float(1 << 23)
    if width == 4:
        return np.frombuffer(data, "<i4").astype(np.float32) / float(1 << 31)
    raise InvalidRequest(f"{param}: {8 * width}-bit WAV samples are not supported", param=param)
