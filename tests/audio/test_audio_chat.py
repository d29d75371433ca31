"""Audio in a chat (issue 38): the tiny audio model the suite writes (tests/support/audio_gguf.py,
a Qwen2-Audio projector libmtmd loads), served for real, asked through the openai SDK with
`input_audio` parts (base64 WAV), as OpenAI's audio-in chat clients send them."""

from __future__ import annotations

import base64
import io

import openai
import pytest
import requests
from PIL import Image
from support.audio_clips import audio_part, samples, tone, wav
from support.audio_gguf import TOKENS_PER_WINDOW, audio_tokens
from support.audio_server import ALM, MAX_SECONDS, VLM
from support.http_server import metric

QUESTION = {"type": "text", "text": "What is this sound?"}


def ask(client: openai.OpenAI, sound: bytes | None, model: str = ALM, **kw: object):
    content: list[dict] = [QUESTION]
    if sound is not None:
        content.append(audio_part(sound))
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": content}],
        **{"temperature": 0, "max_tokens": 6, **kw})


def answer(client: openai.OpenAI, sound: bytes | None, **kw: object) -> str:
    return ask(client, sound, **kw).choices[0].message.content


def encodes(url: str, outcome: str) -> float:
    return metric(url, "slm_image_encodes_total", model=ALM, outcome=outcome)


def post_chat(url: str, content: list[dict], model: str = ALM) -> requests.Response:
    return requests.post(f"{url}/v1/chat/completions", timeout=60, json={
        "model": model, "max_tokens": 2, "messages": [{"role": "user", "content": content}]})


def test_two_sounds_give_two_answers_and_the_same_sound_the_same(aclient: openai.OpenAI):
    low = answer(aclient, tone(440))
    high = answer(aclient, tone(1500))
    noise = answer(aclient, tone(None))
    # Another file with the same sound (stereo, both channels alike): the samples decide.
    low_again = answer(aclient, tone(440, channels=2))
    assert low and high and noise
    assert len({low, high, noise}) == 3
    assert low_again == low


def test_a_repeated_sound_is_not_encoded_again(aclient: openai.OpenAI, audio_server: str):
    sound = tone(660)
    ask(aclient, sound)
    encoded, reused = encodes(audio_server, "encoded"), encodes(audio_server, "reused")
    # Another question about the same sound: the prompt differs before it, so the sequence
    # cache cannot serve it, but the encoder's output kept by the sound's digest does.
    aclient.chat.completions.create(
        model=ALM, temperature=0, max_tokens=2, messages=[{"role": "user", "content": [
            {"type": "text", "text": "Which instrument plays this, please?"},
            audio_part(sound)]}])
    assert encodes(audio_server, "encoded") == encoded
    assert encodes(audio_server, "reused") == reused + 1
    ask(aclient, tone(770))
    assert encodes(audio_server, "encoded") == encoded + 1


def test_usage_counts_the_audio_tokens(aclient: openai.OpenAI):
    with_sound = ask(aclient, tone(550)).usage.prompt_tokens
    without = ask(aclient, None).usage.prompt_tokens
    # A clip shorter than 30 s is one window of 750 tokens, plus the projector's <|audio_bos|> and
    # <|audio_eos|> markers as text.
    assert audio_tokens(1.0) == TOKENS_PER_WINDOW
    assert with_sound - without >= TOKENS_PER_WINDOW


def test_streaming_with_audio_says_what_the_reply_says(aclient: openai.OpenAI):
    sound = tone(1500)
    whole = answer(aclient, sound)
    stream = ask(aclient, sound, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    assert chunks[-1].usage.prompt_tokens > TOKENS_PER_WINDOW


def test_n_choices_with_audio(aclient: openai.OpenAI):
    sound = tone(990)
    reply = ask(aclient, sound, n=2)
    alone = answer(aclient, sound)
    assert [c.index for c in reply.choices] == [0, 1]
    # Greedy: both choices read the same prompt (the sound copied with the sequence).
    assert [c.message.content for c in reply.choices] == [alone, alone]


def test_a_clip_longer_than_one_window_is_heard_to_its_end(aclient: openai.OpenAI):
    # 35 s: libmtmd cuts it into two 30 s windows of one clip. Only the last 5 s differ, so
    # the answers differ only if the second window is encoded for itself.
    head = samples(440, 30)
    one = ask(aclient, wav(head, samples(1500, 5)))
    other = ask(aclient, wav(head, samples(None, 5)))
    assert one.usage.prompt_tokens - ask(aclient, None).usage.prompt_tokens >= 2 * 750
    assert one.choices[0].message.content != other.choices[0].message.content


def test_a_clip_past_max_audio_seconds_is_refused_before_it_is_encoded(audio_server: str):
    before = encodes(audio_server, "encoded")
    r = post_chat(audio_server, [QUESTION, audio_part(tone(300, MAX_SECONDS + 1))])
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "audio_too_long"
    assert err["param"] == "messages.0.content.1.input_audio"
    assert "MAX_AUDIO_SECONDS" in err["message"]
    assert encodes(audio_server, "encoded") == before


def test_audio_beside_an_image_on_an_audio_only_model_names_the_image(audio_server: str):
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(buf, "PNG")
    image = {"type": "image_url", "image_url": {
        "url": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()}}
    r = post_chat(audio_server, [QUESTION, audio_part(tone(440)), image])
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "model_without_image_input"
    assert err["param"] == "messages.0.content.2"
    assert "takes only audio" in err["message"]


def test_audio_to_a_model_whose_projector_takes_only_images(audio_server: str):
    r = post_chat(audio_server, [QUESTION, audio_part(tone(440))], model=VLM)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "model_without_audio_input"
    assert err["param"] == "messages.0.content.1"
    assert "takes only image" in err["message"]


@pytest.mark.parametrize("fmt", ["mp3", "wav"])
def test_audio_that_cannot_be_read_gets_a_clear_400(audio_server: str, fmt: str):
    # An ID3 header and nothing an MP3 decoder can read, whatever `format` claims: the bytes
    # name the container (tests/audio/test_audio_formats.py sends real ones).
    r = post_chat(audio_server, [QUESTION, audio_part(b"ID3\x04\x00" + bytes(64), fmt)])
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"].startswith("messages.0.content.1.input_audio")
    assert "not a mp3 file that can be read" in err["message"]


def test_the_clips_of_one_request_share_the_cap(audio_server: str):
    # Each clip alone is under MAX_AUDIO_SECONDS; together they are not.
    clip = tone(440, seconds=MAX_SECONDS * 0.6)
    r = post_chat(audio_server, [QUESTION, audio_part(clip), audio_part(clip)])
    assert r.status_code == 400, r.text
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == \
        ("audio_too_long", "messages.0.content.2.input_audio")
