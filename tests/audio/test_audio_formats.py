"""Compressed audio in (MP3, FLAC, Ogg Opus, WebM Opus, M4A AAC): what browsers record and
people keep, decoded by FFmpeg through PyAV (media/audio_codecs.py), bounded as WAV is. The
clips are written by PyAV's own encoders, so each is a real file of its kind."""

from __future__ import annotations

import time

import numpy as np
import openai
import pytest
import requests
from support.audio_clips import audio_part, encoded, samples, tone
from support.audio_server import ALM, MAX_SECONDS

KINDS = ["mp3", "flac", "ogg", "webm", "m4a"]
MIME = {"mp3": "audio/mpeg", "flac": "audio/flac", "ogg": "audio/ogg", "webm": "audio/webm",
        "m4a": "audio/mp4"}


def transcribe(client: openai.OpenAI, sound: bytes, kind: str) -> str:
    return client.audio.transcriptions.create(
        model="whisper-1", file=(f"clip.{kind}", sound, MIME[kind]), temperature=0).text


def test_flac_is_heard_exactly_as_the_wav(aclient: openai.OpenAI):
    # Lossless: the same samples, so the same greedy transcript.
    assert transcribe(aclient, encoded(samples(440), "flac"), "flac") == \
        aclient.audio.transcriptions.create(model="whisper-1", temperature=0,
                                            file=("clip.wav", tone(440), "audio/wav")).text


@pytest.mark.parametrize("kind", KINDS)
def test_each_container_is_transcribed_and_the_sound_decides(aclient: openai.OpenAI,
                                                              kind: str):
    low = transcribe(aclient, encoded(samples(440), kind), kind)
    high = transcribe(aclient, encoded(samples(1500), kind), kind)
    assert low and high and low != high


def test_an_mp3_in_a_chat(aclient: openai.OpenAI):
    reply = aclient.chat.completions.create(
        model=ALM, temperature=0, max_tokens=4, messages=[{"role": "user", "content": [
            {"type": "text", "text": "What is this sound?"},
            audio_part(encoded(samples(440), "mp3"), "mp3")]}])
    assert reply.choices[0].message.content
    assert reply.usage.prompt_tokens > 700  # one 30 s window of the clip


def test_a_small_file_of_many_hours_stops_at_the_cap(audio_server: str):
    # 8 kbit/s MP3 of silence: about 1 KB a second on the wire, 64 KB a second decoded. The
    # decoder stops once the cap is passed instead of expanding the whole file first.
    seconds = MAX_SECONDS + 30
    bomb = encoded(np.zeros(8000 * seconds, np.float32), "mp3", rate=8000, bit_rate=8000)
    assert len(bomb) < 2_000 * seconds
    started = time.monotonic()
    r = requests.post(f"{audio_server}/v1/audio/transcriptions", timeout=60,
                      files={"file": ("long.mp3", bomb, "audio/mpeg")},
                      data={"model": "whisper-1"})
    assert r.status_code == 400, r.text
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == ("audio_too_long", "file")
    assert time.monotonic() - started < 30
    assert requests.get(f"{audio_server}/health", timeout=1).status_code == 200


@pytest.mark.parametrize("body", [
    # FFmpeg would probe these as playlists (HLS, concat) that open other files and URLs:
    # the container is named from magic bytes, so they are never handed to FFmpeg.
    b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n",
    b"ffconcat version 1.0\nfile /etc/passwd\n",
    b"plain text, not a sound",
])
def test_what_is_no_audio_container_is_refused_unread(audio_server: str, body: bytes):
    r = requests.post(f"{audio_server}/v1/audio/transcriptions", timeout=60,
                      files={"file": ("clip.m3u8", body, "audio/mpeg")},
                      data={"model": "whisper-1"})
    assert r.status_code == 400
    error = r.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_audio", "file")
    assert "not WAV, MP3, FLAC, Ogg, WebM or M4A" in error["message"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_file_is_a_400_naming_the_part(audio_server: str, kind: str):
    whole = encoded(samples(440), kind)
    damaged = whole[:16] + bytes(len(whole) - 16)  # the magic bytes, then zeros
    r = requests.post(f"{audio_server}/v1/chat/completions", timeout=60, json={
        "model": ALM, "max_tokens": 2, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"}, audio_part(damaged, "mp3")]}]})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"].startswith("messages.0.content.1")
