"""One picture through every family's own client (issue 38): the tiny vision model
(tests/support/vision_gguf.py) answers a red picture and a blue one differently, and the same
picture the same, whichever protocol carried it: Anthropic `image` blocks, Responses
`input_image`, Ollama `images` (chat and generate), LangChain's ChatOpenAI image parts."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable

import anthropic
import ollama
import openai
import pytest
from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI
from PIL import Image

VLM = "tiny-vlm"
QUESTION = "What is in this picture?"


@pytest.fixture(scope="module")
def vision_url(vision_server: str) -> str:
    return vision_server


def png(color: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buf, "PNG")
    return buf.getvalue()


def b64(color: str) -> str:
    return base64.b64encode(png(color)).decode()


def anthropic_answer(url: str) -> Callable[[str], str]:
    client = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0, timeout=120)

    def ask(color: str) -> str:
        reply = client.messages.create(model=VLM, max_tokens=6, extra_body={"temperature": 0},
                                       messages=[{
            "role": "user", "content": [
                {"type": "text", "text": QUESTION},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": b64(color)}}]}])
        return "".join(block.text for block in reply.content if block.type == "text")
    return ask


def responses_answer(url: str) -> Callable[[str], str]:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)

    def ask(color: str) -> str:
        reply = client.responses.create(model=VLM, max_output_tokens=16, temperature=0, input=[{
            "role": "user", "content": [
                {"type": "input_text", "text": QUESTION},
                {"type": "input_image", "image_url": f"data:image/png;base64,{b64(color)}"}]}])
        return reply.output_text
    return ask


def ollama_chat_answer(url: str) -> Callable[[str], str]:
    client = ollama.Client(host=url, timeout=120)

    def ask(color: str) -> str:
        reply = client.chat(model=VLM, options={"temperature": 0, "num_predict": 6},
                            messages=[{"role": "user", "content": QUESTION,
                                       "images": [png(color)]}])
        return reply.message.content or ""
    return ask


def ollama_generate_answer(url: str) -> Callable[[str], str]:
    client = ollama.Client(host=url, timeout=120)

    def ask(color: str) -> str:
        reply = client.generate(model=VLM, prompt=QUESTION, images=[png(color)],
                                options={"temperature": 0, "num_predict": 6})
        return reply.response
    return ask


def langchain_answer(url: str) -> Callable[[str], str]:
    chat = ChatOpenAI(base_url=f"{url}/v1", api_key="unused", model=VLM, temperature=0,
                      max_tokens=6, max_retries=0, timeout=120)

    def ask(color: str) -> str:
        message = HumanMessage(content=[
            {"type": "text", "text": QUESTION},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(color)}"}}])
        return str(chat.invoke([message]).content)
    return ask


@pytest.mark.parametrize("client", [anthropic_answer, responses_answer, ollama_chat_answer,
                                    ollama_generate_answer, langchain_answer],
                         ids=lambda f: f.__name__.removesuffix("_answer"))
def test_each_family_carries_the_picture_to_the_model(vision_url: str, client) -> None:
    ask = client(vision_url)
    red, blue, red_again = ask("red"), ask("blue"), ask("red")
    assert red and blue
    assert red != blue  # the picture, not the words, decides the answer
    assert red_again == red
