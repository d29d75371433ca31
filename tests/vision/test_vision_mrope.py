"""M-RoPE vision models (Qwen2-VL family) served for real: a tiny `qwen2vl` model and its
`qwen2vl_merger` projector written by the suite (tests/support/mrope_vlm_gguf.py), asked through
the openai SDK. An M-RoPE image of n tokens takes only max(rows, cols) positions, so after it a
token's position is not its index: every answer here is checked against llama.cpp's own helpers
(tests/support/mtmd_reference.py), which place the chunks as llama.cpp's tools do, and the
prefix cache must hold across the image."""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import requests
from PIL import Image
from support.http_server import make_settings, metric, running_server
from support.mrope_vlm_gguf import write_tiny_qwen2vl
from support.mtmd_reference import reference_answer, reference_run

VLM = "tiny-qwen2vl"
MARKER = "<__media__>"
SIZE = (64, 48)          # 4 x 3 merged patches: 12 image tokens on 4 positions
IMAGE_TOKENS = 12
SHORT = f"Picture: {MARKER}\nWhat is in it?"
LONG = f"Picture: {MARKER}\n" + "Tell me what you see there, in a few words. " * 12
LONG_CHAT = "Tell me what you see there, in a few words. " * 12


@pytest.fixture(scope="module")
def mrope_dir(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mrope-models")
    write_tiny_qwen2vl(folder, model_path.parent)
    os.link(model_path, folder / model_path.name)
    return folder


@pytest.fixture(scope="module")
def url(mrope_dir: Path) -> Iterator[str]:
    settings = make_settings(mrope_dir, model_path=mrope_dir / f"{VLM}.gguf",
                             max_loaded_models=2, n_ctx=2048)
    with running_server(settings) as base:
        yield base


@pytest.fixture(scope="module")
def vclient(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def cold(mrope_dir: Path) -> Iterator[openai.OpenAI]:
    """The same model with PROMPT_CACHE=off: every prompt read from its first token."""
    settings = make_settings(mrope_dir, model_path=mrope_dir / f"{VLM}.gguf",
                             prompt_cache="off", n_parallel=1)
    with running_server(settings) as base:
        yield openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0,
                            timeout=120)


def b64(color: str, size: tuple[int, int] = SIZE) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def complete(client: openai.OpenAI, text: str, *images: str, **kw: object):
    prompt = {"prompt_string": text, "multimodal_data": list(images)}
    return client.completions.create(model=VLM, prompt=prompt,  # type: ignore[arg-type]
                                     **{"temperature": 0, "max_tokens": 8, **kw})


def llama_cpp_says(mrope_dir: Path, text: str, *images: str, shift: int = 0) -> str:
    return reference_answer(str(mrope_dir / f"{VLM}.gguf"),
                            str(mrope_dir / f"mmproj-{VLM}.gguf"), text, list(images),
                            max_tokens=8, shift=shift)


def ask(client: openai.OpenAI, messages: list[dict], **kw: object):
    return client.chat.completions.create(model=VLM, messages=messages,  # type: ignore[arg-type]
                                          **{"temperature": 0, "max_tokens": 8, **kw})


def user(color: str, text: str = "What is in this picture?") -> dict:
    return {"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(color)}"}},
        {"type": "text", "text": text}]}


def test_the_model_loads_and_is_listed_as_vision(url: str):
    models = requests.get(f"{url}/v1/models", timeout=30).json()["data"]
    listed = next(m for m in models if m["id"] == VLM)
    assert listed["input_modalities"] == ["text", "image"]
    health = requests.get(f"{url}/health", timeout=30).json()
    assert health["input_modalities"] == ["text", "image"]
    assert health["mmproj"].endswith(f"mmproj-{VLM}.gguf")


def test_usage_counts_tokens_not_positions(vclient: openai.OpenAI, mrope_dir: Path):
    image = b64("red")
    ref = reference_run(str(mrope_dir / f"{VLM}.gguf"), str(mrope_dir / f"mmproj-{VLM}.gguf"),
                        SHORT, [image], max_tokens=1)
    # The image's 12 tokens take 4 positions; the context holds one cell a token.
    assert ref["n_tokens"] - ref["n_pos"] == IMAGE_TOKENS - 4
    assert complete(vclient, SHORT, image).usage.prompt_tokens == ref["n_tokens"]


@pytest.mark.parametrize(("text", "color"), [(SHORT, "red"), (LONG, "blue")])
def test_positions_after_the_image_are_llama_cpps(vclient: openai.OpenAI, mrope_dir: Path,
                                                  text: str, color: str):
    """The text after an image sits where llama.cpp's own helper puts it; an answer with the
    text 8 positions further on (as if the image took a position a token) differs, so the
    comparison would catch positions taken from indices."""
    image = b64(color)
    expected = llama_cpp_says(mrope_dir, text, image)
    assert llama_cpp_says(mrope_dir, text, image, shift=IMAGE_TOKENS - 4) != expected
    assert complete(vclient, text, image).choices[0].text == expected


def test_two_images_give_two_answers(vclient: openai.OpenAI):
    red = ask(vclient, [user("red")]).choices[0].message.content
    blue = ask(vclient, [user("blue")]).choices[0].message.content
    assert red and blue and red != blue


def test_the_same_image_twice_is_read_from_the_cache(vclient: openai.OpenAI):
    first = ask(vclient, [user("green")])
    second = ask(vclient, [user("green")])
    assert second.choices[0].message.content == first.choices[0].message.content
    # The whole prompt, image and the text after it, came from the cache.
    assert second.usage.prompt_tokens_details.cached_tokens == second.usage.prompt_tokens


def test_a_follow_up_reuses_the_prefix_past_the_image(vclient: openai.OpenAI,
                                                      cold: openai.OpenAI):
    first = ask(vclient, [user("purple")])
    turns = [user("purple"), {"role": "assistant", "content": first.choices[0].message.content},
             {"role": "user", "content": "And what colour is it, would you say?"}]
    second = ask(vclient, turns)
    # What the first request read is reused, the image and the text after it (the template
    # may end the first turn's prompt differently, by a token or two).
    assert second.usage.prompt_tokens_details.cached_tokens >= first.usage.prompt_tokens - 2
    # ... and the answer is the one a server without a prompt cache reads from scratch.
    assert second.choices[0].message.content == ask(cold, turns).choices[0].message.content


def test_the_disk_cache_restores_a_sequence_holding_an_image(mrope_dir: Path,
                                                             cold: openai.OpenAI):
    """PROMPT_CACHE=disk, one sequence: a long prompt with an image is saved, another prompt
    takes the sequence, the first comes back from the disk with its positions."""
    settings = make_settings(mrope_dir, model_path=mrope_dir / f"{VLM}.gguf", n_parallel=1,
                             prompt_cache="disk", n_ctx=2048)
    turns = [user("navy", LONG_CHAT)]
    with running_server(settings) as base:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0,
                               timeout=120)
        first = ask(client, turns)
        ask(client, [{"role": "user", "content": "Something else entirely."}])
        again = ask(client, turns)
    assert again.usage.prompt_tokens_details.cached_tokens >= first.usage.prompt_tokens - 1
    assert again.choices[0].message.content == first.choices[0].message.content == \
        ask(cold, turns).choices[0].message.content


def test_n_2_gives_the_greedy_answer_twice(vclient: openai.OpenAI, mrope_dir: Path):
    image = b64("orange")
    reply = complete(vclient, LONG, image, n=2)
    texts = [c.text for c in reply.choices]
    assert texts == [llama_cpp_says(mrope_dir, LONG, image)] * 2


def test_streaming_gives_the_same_answer(vclient: openai.OpenAI, mrope_dir: Path):
    image = b64("teal")
    stream = complete(vclient, LONG, image, stream=True)
    streamed = "".join(c.choices[0].text for c in stream if c.choices)
    assert streamed == llama_cpp_says(mrope_dir, LONG, image)
    chat = ask(vclient, [user("teal")], stream=True)
    streamed_chat = "".join(c.choices[0].delta.content or "" for c in chat if c.choices)
    assert streamed_chat == ask(vclient, [user("teal")]).choices[0].message.content


def test_two_images_in_one_prompt(vclient: openai.OpenAI, mrope_dir: Path):
    text = f"First {MARKER} then {MARKER}\nWhich one is brighter, and why?"
    images = (b64("red"), b64("yellow", (84, 56)))
    assert complete(vclient, text, *images).choices[0].text == \
        llama_cpp_says(mrope_dir, text, *images)


def test_prompt_lookup_drafts_after_the_image_keep_llama_cpps_answer(mrope_dir: Path):
    """LOOKUP_DRAFT_MAX: guessed tokens after an image are decoded at positions, and the
    rejected ones dropped from the cache by position (commit.py), not by index."""
    settings = make_settings(mrope_dir, model_path=mrope_dir / f"{VLM}.gguf", n_parallel=1,
                             lookup_draft_max=8)
    image = b64("maroon")
    # The answer (` inoc inoc ...`) is in the prompt: the lookup guesses what follows it there.
    text = LONG + (" orthodoxy orthodoxy orthodoxy inoc inoc is what I see, a small red dot "
                   "on the wall.") * 3
    with running_server(settings) as base:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0,
                               timeout=120)
        texts = [complete(client, text, image, max_tokens=24).choices[0].text
                 for _ in range(2)]
        rejected = metric(base, "slm_draft_tokens_total", model=VLM, outcome="rejected")
    expected = reference_answer(str(mrope_dir / f"{VLM}.gguf"),
                                str(mrope_dir / f"mmproj-{VLM}.gguf"), text, [image],
                                max_tokens=24)
    assert rejected > 0  # drafts were decoded and some dropped: the rollback ran
    assert texts == [expected, expected]
