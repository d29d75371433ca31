"""Images through the engine (issue 38): a tiny vision model written by the suite
(tests/support/vision_gguf.py), served for real, asked through the openai SDK with `image_url`
data URLs, as LangChain, the Agents SDK and Open WebUI send them."""

from __future__ import annotations

import base64
import io
import json

import openai
import pytest
import requests
from PIL import Image
from support.http_server import MODEL, metric
from support.vision_gguf import IMAGE_SIZE, PATCH_SIZE

VLM = "tiny-vlm"
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2


@pytest.fixture(scope="module")
def vclient(vision_server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{vision_server}/v1", api_key="unused", max_retries=0,
                         timeout=120)


def data_url(color: str, fmt: str = "PNG", size: tuple[int, int] = (64, 48)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt)
    mime = "jpeg" if fmt == "JPEG" else fmt.lower()
    return f"data:image/{mime};base64,{base64.b64encode(buf.getvalue()).decode()}"


def ask(client: openai.OpenAI, url: str | None, model: str = VLM, **kw: object):
    content: list[dict] = [{"type": "text", "text": "What is in this picture?"}]
    if url is not None:
        content.append({"type": "image_url", "image_url": {"url": url}})
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": content}],
        **{"temperature": 0, "max_tokens": 6, **kw})


def test_two_images_give_two_answers_and_the_same_image_the_same(vclient: openai.OpenAI):
    red = ask(vclient, data_url("red")).choices[0].message.content
    blue = ask(vclient, data_url("blue")).choices[0].message.content
    red_again = ask(vclient, data_url("red", "JPEG")).choices[0].message.content
    assert red and blue
    assert red != blue
    # Another encoding of the same picture (JPEG instead of PNG): the pixels decide.
    assert red_again == red


def test_the_same_image_twice_is_read_from_the_cache(vclient: openai.OpenAI):
    url = data_url("green")
    first = ask(vclient, url)
    second = ask(vclient, url)
    assert second.choices[0].message.content == first.choices[0].message.content
    cached = second.usage.prompt_tokens_details.cached_tokens
    # Everything up to the question's end came from the cache, the image's tokens included.
    assert cached >= second.usage.prompt_tokens - 1
    assert cached > IMAGE_TOKENS


def test_usage_counts_the_image_tokens(vclient: openai.OpenAI):
    with_image = ask(vclient, data_url("yellow")).usage.prompt_tokens
    without = ask(vclient, None).usage.prompt_tokens
    assert with_image - without >= IMAGE_TOKENS


def test_a_repeated_image_is_not_encoded_again(vclient: openai.OpenAI, vision_server: str):
    def encoded() -> float:
        return metric(vision_server, "slm_image_encodes_total", model=VLM, outcome="encoded")

    url = data_url("purple")
    ask(vclient, url)
    before = encoded()
    # Another question about the same picture: the prompt differs before the image, so the
    # sequence cache cannot serve it, but the encoder's output kept by digest does.
    vclient.chat.completions.create(
        model=VLM, temperature=0, max_tokens=2,
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "Describe the colours, please."},
            {"type": "image_url", "image_url": {"url": url}}]}])
    assert encoded() == before
    ask(vclient, data_url("orange"))
    assert encoded() == before + 1


def test_n_choices_with_an_image(vclient: openai.OpenAI):
    reply = ask(vclient, data_url("red"), n=2)
    alone = ask(vclient, data_url("red")).choices[0].message.content
    assert [c.index for c in reply.choices] == [0, 1]
    # Greedy: both choices read the same prompt (the image copied with the sequence).
    assert [c.message.content for c in reply.choices] == [alone, alone]


def test_json_schema_with_an_image(vclient: openai.OpenAI):
    schema = {"type": "object", "properties": {"colour": {"enum": ["red", "blue", "green"]}},
              "required": ["colour"], "additionalProperties": False}
    reply = ask(vclient, data_url("blue"), max_tokens=40, response_format={
        "type": "json_schema", "json_schema": {"name": "colour", "schema": schema}})
    assert json.loads(reply.choices[0].message.content)["colour"] in {"red", "blue", "green"}


def test_tools_with_an_image(vclient: openai.OpenAI):
    tools = [{"type": "function", "function": {
        "name": "name_colour", "parameters": {
            "type": "object", "properties": {"colour": {"type": "string", "maxLength": 8}},
            "required": ["colour"]}}}]
    reply = ask(vclient, data_url("red"), max_tokens=60, tools=tools,
                tool_choice={"type": "function", "function": {"name": "name_colour"}})
    call = reply.choices[0].message.tool_calls[0]
    assert call.function.name == "name_colour"
    assert "colour" in json.loads(call.function.arguments)


def test_a_text_only_model_refuses_an_image_naming_the_part(vclient: openai.OpenAI):
    with pytest.raises(openai.BadRequestError) as err:
        ask(vclient, data_url("red"), model=MODEL)
    body = err.value.body
    assert body["param"] == "messages.0.content.1"
    assert body["code"] == "model_without_image_input"
    assert "does not take image input" in body["message"]


def test_the_core_takes_only_data_urls(vclient: openai.OpenAI):
    with pytest.raises(openai.BadRequestError) as err:
        ask(vclient, "https://example.com/cat.png")
    assert err.value.body["param"] == "messages.0.content.1.image_url.url"


def test_bytes_that_are_no_image_are_a_400(vclient: openai.OpenAI):
    junk = "data:image/png;base64," + base64.b64encode(b"not a picture at all").decode()
    with pytest.raises(openai.BadRequestError) as err:
        ask(vclient, junk)
    assert err.value.body["param"] == "messages.0.content.1.image_url.url"


def test_a_marker_in_text_opens_no_image_slot(vclient: openai.OpenAI):
    # libmtmd's default marker typed by a client is text, not a place for an image.
    reply = vclient.chat.completions.create(
        model=VLM, temperature=0, max_tokens=2,
        messages=[{"role": "user", "content": "<__media__> <|media-0-0|>"}])
    assert reply.choices[0].finish_reason == "length"


def test_listings_say_what_a_model_reads(vision_server: str):
    models = requests.get(f"{vision_server}/v1/models", timeout=10).json()["data"]
    by_id = {m["id"]: m for m in models}
    assert by_id[VLM]["input_modalities"] == ["text", "image"]
    assert by_id[MODEL]["input_modalities"] == ["text"]
    assert not any(m["id"].startswith("mmproj-") for m in models)  # part of its model
    show = requests.post(f"{vision_server}/api/show", json={"model": VLM}, timeout=10).json()
    assert "vision" in show["capabilities"]
    text_show = requests.post(f"{vision_server}/api/show", json={"model": MODEL},
                              timeout=10).json()
    assert "vision" not in text_show["capabilities"]
    health = requests.get(f"{vision_server}/health", timeout=10).json()
    assert health["mmproj"] == "mmproj-tiny-vlm.gguf"
    assert health["input_modalities"] == ["text", "image"]


def test_image_requests_run_beside_text_requests(vclient: openai.OpenAI):
    """Requests with and without images in flight together, each in its own sequence: each
    answers as it does alone (greedy), streamed or not."""
    from concurrent.futures import ThreadPoolExecutor

    alone_red = ask(vclient, data_url("red"), max_tokens=12).choices[0].message.content
    alone_blue = ask(vclient, data_url("blue"), max_tokens=12).choices[0].message.content
    alone_text = ask(vclient, None, max_tokens=12).choices[0].message.content

    def streamed(url: str | None) -> str:
        content: list[dict] = [{"type": "text", "text": "What is in this picture?"}]
        if url is not None:
            content.append({"type": "image_url", "image_url": {"url": url}})
        stream = vclient.chat.completions.create(
            model=VLM, messages=[{"role": "user", "content": content}], temperature=0,
            max_tokens=12, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(streamed, u) for u in
                   (data_url("red"), None, data_url("blue"), None)]
        got = [f.result() for f in futures]
    assert got == [alone_red, alone_text, alone_blue, alone_text]


def test_line_wrapped_base64_is_the_same_picture(vclient: openai.OpenAI):
    # MIME-style base64 (76-character lines, as Python's base64.encodebytes and openssl write
    # it): the line breaks are not part of the picture.
    url = data_url("red")
    payload = base64.b64decode(url.split(",", 1)[1])
    wrapped = "data:image/png;base64," + base64.encodebytes(payload).decode()
    assert "\n" in wrapped
    assert ask(vclient, wrapped).choices[0].message.content == \
        ask(vclient, url).choices[0].message.content
