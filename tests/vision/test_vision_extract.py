"""/v1/extract with pictures: a schema in, JSON that fits it out, read from an image (a receipt,
a form) on a vision model, through the same media intake as every family's images."""

from __future__ import annotations

import base64

import requests
from support.http_server import MODEL
from test_vision_chat import VLM, data_url

SCHEMA = {"type": "object", "properties": {"label": {"type": "string", "maxLength": 24}},
          "required": ["label"], "additionalProperties": False}


def extract(url: str, **body: object) -> requests.Response:
    # Short instructions: the tiny model averages its attention over the prompt, so the
    # picture's 16 tokens must not be drowned by a long default instruction.
    return requests.post(f"{url}/v1/extract", timeout=120, json={
        "model": VLM, "schema": SCHEMA, "instructions": "JSON.", "max_tokens": 40, **body})


def test_the_picture_decides_the_json(vision_server: str):
    red = extract(vision_server, images=[data_url("red")])
    blue = extract(vision_server, images=[data_url("blue")])
    again = extract(vision_server, images=[data_url("red")])
    assert red.status_code == blue.status_code == 200, (red.text, blue.text)
    assert red.json()["object"] == "extract.result"
    assert set(red.json()["data"]) == {"label"}
    assert red.json()["data"] != blue.json()["data"]
    assert again.json()["data"] == red.json()["data"]
    # The picture's tokens are counted as the prompt's.
    text_only = extract(vision_server, text="A red square.").json()["usage"]["prompt_tokens"]
    assert red.json()["usage"]["prompt_tokens"] > text_only


def test_text_and_bare_base64_together(vision_server: str):
    bare = data_url("red").split(",", 1)[1]
    reply = extract(vision_server, text="The label on this box:", images=[bare])
    assert reply.status_code == 200, reply.text
    assert isinstance(reply.json()["data"]["label"], str)


def test_a_text_model_refuses_images_naming_the_field(vision_server: str):
    reply = extract(vision_server, model=MODEL, images=[data_url("red")])
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert (error["code"], error["param"]) == ("model_without_image_input", "images")


def test_bad_pictures_and_empty_bodies_are_400s(vision_server: str):
    nothing = extract(vision_server)
    assert nothing.status_code == 400, nothing.text
    broken = extract(vision_server, images=[data_url("red"), "%%%not base64%%%"])
    assert broken.status_code == 400
    assert broken.json()["error"]["param"] == "images.1"
    not_a_picture = extract(vision_server, images=[base64.b64encode(b"plain text").decode()])
    assert not_a_picture.status_code == 400
    assert not_a_picture.json()["error"]["param"].startswith("images.0")
    many = extract(vision_server, images=[data_url("red")] * 200)
    assert many.status_code == 400
    assert many.json()["error"]["code"] == "too_many_images"
