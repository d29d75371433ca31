"""Images in /v1/completions as llama.cpp's server takes them (issue 38): a prompt object
`{"prompt_string": "... <__media__> ...", "multimodal_data": ["<base64>"]}`, alone or in a
list, on the tiny vision model (tests/support/vision_gguf.py) served for real, through the
openai SDK (it passes the object through as `prompt`) and raw HTTP."""

from __future__ import annotations

import base64
import io
import os
import struct
import zlib

import openai
import pytest
import requests
from PIL import Image
from support.http_server import metric
from support.vision_gguf import IMAGE_SIZE, PATCH_SIZE

VLM = "tiny-vlm"
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2
MARKER = "<__media__>"
QUESTION = f"Picture: {MARKER}\nWhat is in it?"


@pytest.fixture(scope="module")
def url(vision_server: str) -> str:
    return vision_server


@pytest.fixture(scope="module")
def vclient(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)


def b64(color: str, fmt: str = "PNG", size: tuple[int, int] = (64, 48)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt)
    return base64.b64encode(buf.getvalue()).decode()


def obj(*images: str, text: str = QUESTION) -> dict:
    return {"prompt_string": text, "multimodal_data": list(images)}


def complete(client: openai.OpenAI, prompt: object, **kw: object):
    # The SDK types `prompt` as text or ids but sends what it is given: llama-server's
    # clients pass the object as it is.
    return client.completions.create(model=VLM, prompt=prompt,  # type: ignore[arg-type]
                                     **{"temperature": 0, "max_tokens": 6, **kw})


def answer(client: openai.OpenAI, prompt: object, **kw: object) -> str:
    return complete(client, prompt, **kw).choices[0].text


def post(url: str, body: dict) -> requests.Response:
    return requests.post(f"{url}/v1/completions", json={"model": VLM, "max_tokens": 4,
                                                        "temperature": 0, **body}, timeout=60)


def refusal(resp: requests.Response, status: int = 400) -> dict:
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    return error


def test_two_images_give_two_answers_and_the_same_image_the_same(vclient: openai.OpenAI):
    red = answer(vclient, obj(b64("red")))
    blue = answer(vclient, obj(b64("blue")))
    red_again = answer(vclient, obj(b64("red", "JPEG")))
    assert red and blue
    assert red != blue
    assert red_again == red  # the pixels decide, not the encoding


def test_the_same_image_again_is_not_encoded_again(vclient: openai.OpenAI, url: str):
    def encoded() -> float:
        return metric(url, "slm_image_encodes_total", model=VLM, outcome="encoded")

    image = b64("purple")
    first = answer(vclient, obj(image))
    before = encoded()
    # Another prompt around the same picture: no prefix to reuse, but the encoder's output
    # kept by the picture's digest is.
    other = answer(vclient, obj(image, text=f"Look: {MARKER} Say what it is."))
    assert encoded() == before
    assert answer(vclient, obj(image)) == first
    assert other
    answer(vclient, obj(b64("orange")))
    assert encoded() == before + 1


def test_usage_counts_each_image(vclient: openai.OpenAI):
    text_only = complete(vclient, {"prompt_string": "Picture: \nWhat is in it?"}).usage
    one = complete(vclient, obj(b64("yellow"))).usage
    two = complete(vclient, obj(b64("yellow"), b64("navy"),
                                text=f"A: {MARKER} B: {MARKER}\nWhat is in it?")).usage
    assert one.prompt_tokens - text_only.prompt_tokens >= IMAGE_TOKENS
    assert two.prompt_tokens - one.prompt_tokens >= IMAGE_TOKENS
    assert two.total_tokens == two.prompt_tokens + two.completion_tokens


def test_a_list_of_prompts_one_choice_set_each(vclient: openai.OpenAI):
    red, blue = answer(vclient, obj(b64("red"))), answer(vclient, obj(b64("blue")))
    text = answer(vclient, "Picture: \nWhat is in it?")
    reply = complete(vclient, [obj(b64("red")), "Picture: \nWhat is in it?", obj(b64("blue"))],
                     n=2)
    assert [c.index for c in reply.choices] == list(range(6))
    # Greedy, so each prompt's two choices agree, and each answers as it does alone.
    assert [c.text for c in reply.choices] == [red, red, text, text, blue, blue]


def test_streamed_echoed_with_logprobs(vclient: openai.OpenAI):
    prompt = obj(b64("red"))
    alone = answer(vclient, prompt)
    stream = complete(vclient, prompt, stream=True)
    assert "".join(c.choices[0].text for c in stream) == alone
    echoed = complete(vclient, prompt, echo=True, logprobs=2).choices[0]
    # The prompt as the client wrote it, marker included, then the answer.
    assert echoed.text == QUESTION + alone
    assert echoed.logprobs is not None
    assert "".join(echoed.logprobs.tokens) == alone
    assert echoed.logprobs.text_offset[0] == len(QUESTION)


def test_a_phone_sized_image_fits_the_media_budget(url: str):
    noise = Image.frombytes("RGB", (640, 640), os.urandom(640 * 640 * 3))
    buf = io.BytesIO()
    noise.save(buf, "PNG")
    image = base64.b64encode(buf.getvalue()).decode()
    assert len(image) > 1024 * 1024  # above MAX_REQUEST_BYTES, the text routes' limit
    resp = post(url, {"prompt": obj(image)})
    assert resp.status_code == 200, resp.text


def test_a_marker_in_plain_text_opens_no_image_slot(vclient: openai.OpenAI):
    plain = complete(vclient, QUESTION).usage.prompt_tokens
    as_object = complete(vclient, {"prompt_string": QUESTION.replace(MARKER, "")}).usage
    # Typed text: the marker's own few tokens, not an image's sixteen.
    assert plain - as_object.prompt_tokens < IMAGE_TOKENS


@pytest.mark.parametrize("prompt, param, code", [
    (obj(text=f"{MARKER} and {MARKER}"), "prompt.multimodal_data", "media_marker_mismatch"),
    ({"prompt_string": f"What is {MARKER}?"}, "prompt.multimodal_data",
     "media_marker_mismatch"),
    (obj(b64("red"), b64("blue")), "prompt.multimodal_data", "media_marker_mismatch"),
    (obj(b64("red"), text="no marker here"), "prompt.multimodal_data", "media_marker_mismatch"),
    (["fine", obj(text=MARKER)], "prompt.1.multimodal_data", "media_marker_mismatch"),
    # Every object's markers are counted before any image is decoded.
    ([obj("not base64!"), obj(text=MARKER)], "prompt.1.multimodal_data",
     "media_marker_mismatch"),
    (obj("not base64!"), "prompt.multimodal_data.0", "invalid_image"),
    (obj(base64.b64encode(b"plain text, no picture").decode()), "prompt.multimodal_data.0",
     "invalid_image"),
    (obj(f"data:image/png;base64,{b64('red')}"), "prompt.multimodal_data.0", "invalid_image"),
    (obj(*[b64("red")] * 17, text=MARKER * 17), "prompt.multimodal_data.16",
     "too_many_images"),
])
def test_hostile_prompt_objects_are_a_400_naming_the_field(url: str, prompt: object,
                                                            param: str, code: str):
    def encoded() -> float:
        return metric(url, "slm_image_encodes_total", model=VLM, outcome="encoded")

    before = encoded()
    error = refusal(post(url, {"prompt": prompt}))
    assert (error["param"], error["code"]) == (param, code)
    assert error["message"].startswith(param.split(".multimodal_data")[0])
    assert encoded() == before  # refused before the projector saw anything
    # Refused before any model is involved: a model that does not exist changes nothing.
    error = refusal(post(url, {"prompt": prompt, "model": "no-such-model"}))
    assert (error["param"], error["code"]) == (param, code)


def test_the_sdk_sees_a_bad_request(vclient: openai.OpenAI):
    with pytest.raises(openai.BadRequestError) as err:
        complete(vclient, obj(text=MARKER))
    assert err.value.body["param"] == "prompt.multimodal_data"


def test_a_text_only_model_refuses_the_image_naming_it(url: str):
    from support.http_server import MODEL

    error = refusal(post(url, {"model": MODEL, "prompt": ["plain", obj(b64("red"))]}))
    assert error["code"] == "model_without_image_input"
    assert error["param"] == "prompt.1.multimodal_data.0"
    # The same object without images is a text prompt there, as llama-server takes it.
    resp = post(url, {"model": MODEL, "prompt": {"prompt_string": "Hello"}})
    assert resp.status_code == 200, resp.text


def test_suffix_with_images_is_refused(url: str):
    error = refusal(post(url, {"prompt": obj(b64("red")), "suffix": "end"}))
    assert error["param"] == "suffix"


def test_the_cores_decode_names_the_item(url: str):
    """A PNG declaring 100,000 x 100,000 pixels passes the edge's magic-byte check; the core's
    one decode refuses it from the header, naming the list item as the request wrote it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 10**5, 10**5, 8, 2,
                                                                0, 0, 0)) \
        + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    prompt = ["text", obj(b64("red"), base64.b64encode(bomb).decode(),
                          text=f"{MARKER}{MARKER}")]
    error = refusal(post(url, {"prompt": prompt}))
    assert error["param"] == "prompt.1.multimodal_data.1"
    assert "MAX_IMAGE_PIXELS" in error["message"]
