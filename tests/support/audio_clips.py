"""Sounds for the audio tests, made with numpy: tones and noise as 16 kHz WAV files (the rate
every audio projector libmtmd supports reads, so nothing is resampled on the way)."""

from __future__ import annotations

import base64
import io
import wave

import numpy as np

RATE = 16_000


def samples(freq: float | None, seconds: float = 1.0, *, seed: int = 0) -> np.ndarray:
    """A sine at `freq` Hz, or white noise where `freq` is None, at half full scale."""
    n = int(RATE * seconds)
    if freq is None:
        return np.random.default_rng(seed).uniform(-0.5, 0.5, n)
    return 0.5 * np.sin(2 * np.pi * freq * np.arange(n) / RATE)


def wav(*pieces: np.ndarray, channels: int = 1) -> bytes:
    """The pieces one after another as a 16-bit PCM WAV file; with `channels` > 1, each
    channel holds the same samples."""
    pcm = (np.concatenate(pieces) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.repeat(pcm, channels).tobytes())
    return buf.getvalue()


def tone(freq: float | None, seconds: float = 1.0, **kw: int) -> bytes:
    return wav(samples(freq, seconds), **kw)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def audio_part(data: bytes, fmt: str = "wav") -> dict:
    """An OpenAI chat `input_audio` content part."""
    return {"type": "input_audio", "input_audio": {"data": b64(data), "format": fmt}}


# Our container name -> (FFmpeg muxer, codec): what browsers record and people keep.
CODECS = {"mp3": ("mp3", "libmp3lame"), "flac": ("flac", "flac"), "ogg": ("ogg", "libopus"),
          "webm": ("webm", "libopus"), "m4a": ("ipod", "aac")}


def encoded(pcm: np.ndarray, kind: str, *, rate: int = RATE, bit_rate: int | None = None
            ) -> bytes:
    """`pcm` (floats in [-1, 1]) as a `kind` file written by PyAV (FFmpeg's encoders)."""
    import av

    muxer, codec = CODECS[kind]
    buf = io.BytesIO()
    with av.open(buf, "w", format=muxer) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        if bit_rate:
            stream.bit_rate = bit_rate
        frame_size = 960
        data = pcm.astype(np.float32)
        for start in range(0, len(data), frame_size):
            piece = data[start:start + frame_size].reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(piece, format="flt", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()
