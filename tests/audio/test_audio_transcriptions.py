"""POST /v1/audio/transcriptions through the tiny audio model (tests/support/audio_gguf.py),
called as the openai SDK and Open WebUI's speech-to-text call it: a multipart form with the
audio as `file` and `model="whisper-1"`."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
import requests
from support.audio_clips import tone
from support.audio_server import ALM, MAX_AUDIO_BYTES, MAX_SECONDS, VLM
from support.http_server import make_settings, metric, running_server


def transcribe(client: openai.OpenAI, sound: bytes, **kw: object):
    return client.audio.transcriptions.create(
        model="whisper-1", file=("clip.wav", sound, "audio/wav"), **{"temperature": 0, **kw})


def post_form(url: str, sound: bytes, **fields: str) -> requests.Response:
    return requests.post(f"{url}/v1/audio/transcriptions", timeout=60,
                         files={"file": ("clip.wav", sound, "audio/wav")},
                         data={"model": "whisper-1", **fields})


def test_a_transcript_depends_on_the_sound(aclient: openai.OpenAI):
    low = transcribe(aclient, tone(440))
    high = transcribe(aclient, tone(1500))
    assert low.text and high.text
    assert low.text != high.text


def test_a_transcript_stops_at_whispers_448_tokens_a_window(aclient: openai.OpenAI,
                                                             audio_server: str):
    # The tiny model never says end-of-text: without a bound it would fill the context (2048
    # tokens less the prompt's 811). A clip shorter than 30 s gets one window's 448.
    before = metric(audio_server, "slm_completion_tokens_total")
    transcribe(aclient, tone(330))
    assert metric(audio_server, "slm_completion_tokens_total") - before == 448


def test_text_and_verbose_json_formats(aclient: openai.OpenAI):
    sound = tone(880, 2.5)
    text = transcribe(aclient, sound).text
    # response_format="text": the SDK hands back the body itself.
    plain = transcribe(aclient, sound, response_format="text")
    assert isinstance(plain, str)
    assert plain.strip() == text
    # language and prompt, as Open WebUI sends them, are taken (and said back).
    verbose = transcribe(aclient, sound, response_format="verbose_json", language="en",
                         prompt="A tuning fork.")
    assert verbose.text
    assert verbose.task == "transcribe"
    assert verbose.language == "en"
    assert verbose.duration == pytest.approx(2.5)


def test_a_model_without_audio_input_is_a_400_naming_file(audio_server: str):
    r = post_form(audio_server, tone(440), model=VLM)
    assert r.status_code == 400
    err = r.json()["error"]
    assert (err["param"], err["code"]) == ("file", "model_without_audio_input")


def test_a_clip_past_max_audio_seconds_is_refused_before_it_is_encoded(audio_server: str):
    before = metric(audio_server, "slm_image_encodes_total", model=ALM, outcome="encoded")
    r = post_form(audio_server, tone(300, MAX_SECONDS + 1))
    assert r.status_code == 400
    err = r.json()["error"]
    assert (err["param"], err["code"]) == ("file", "audio_too_long")
    assert metric(audio_server, "slm_image_encodes_total", model=ALM,
                  outcome="encoded") == before


def test_a_file_past_max_audio_bytes_is_a_413(audio_server: str):
    big = tone(300, MAX_AUDIO_BYTES / 32_000 + 1)
    assert len(big) > MAX_AUDIO_BYTES
    r = post_form(audio_server, big)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "audio_too_large"


def test_an_unreadable_mp3_is_refused_clearly(audio_server: str):
    # An ID3 header and nothing after it an MP3 decoder can read.
    r = requests.post(f"{audio_server}/v1/audio/transcriptions", timeout=60,
                      files={"file": ("clip.mp3", b"ID3\x04\x00" + bytes(64), "audio/mpeg")},
                      data={"model": "whisper-1"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == "file"
    assert "not a mp3 file that can be read" in err["message"]


def test_a_clip_past_the_context_is_a_400_naming_file(audio_dir: Path):
    # 31 s is two 30 s windows, 1,500 tokens: past a 1,024-token context. Refused from the
    # token count, before the clip is encoded.
    settings = make_settings(audio_dir, model_path=audio_dir / f"{ALM}.gguf", n_ctx=1024)
    with running_server(settings) as url:
        r = post_form(url, tone(440, 31))
        assert r.status_code == 400
        err = r.json()["error"]
        assert (err["param"], err["code"]) == ("file", "context_length_exceeded")
        assert metric(url, "slm_image_encodes_total", model=ALM, outcome="encoded") == 0
