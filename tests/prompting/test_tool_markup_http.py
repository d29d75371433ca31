"""Tool calls over real HTTP in each template's markup, and a streamed reply that reassembles
to exactly the non-streamed one.

The markup models are the real default model with another chat template written into a copy
of its GGUF: the weights know nothing of `[TOOL_CALLS]` or `<|python_tag|>`, but a forced call is
grammar-constrained, so the reply is the template's markup whatever the weights prefer, and
what the server owes is to hand it back as tool_calls, never as content.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from openai import OpenAI
from support.ggufs import with_chat_template
from support.http_server import MODEL, make_settings, running_server
from test_tool_markup import (
    DEEPSEEK_R1_TEMPLATE,
    DEEPSEEK_V31_TEMPLATE,
    GRANITE_TEMPLATE,
    LLAMA31_TEMPLATE,
    MISTRAL_TEMPLATE,
    MISTRAL_V11_TEMPLATE,
)

from slm_api.engine import masks

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "maxLength": 40},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"], "additionalProperties": False}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Current time in a timezone",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string", "maxLength": 40}},
                   "required": ["tz"]}}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
TEMPLATES = {"llama3": LLAMA31_TEMPLATE, "mistral": MISTRAL_TEMPLATE,
             "mistral-v11": MISTRAL_V11_TEMPLATE, "deepseek-r1": DEEPSEEK_R1_TEMPLATE,
             "deepseek-v3.1": DEEPSEEK_V31_TEMPLATE, "granite": GRANITE_TEMPLATE}


@pytest.fixture(scope="module")
def markup_client(model_path: Path, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[OpenAI]:
    folder = tmp_path_factory.mktemp("markup-models")
    os.link(model_path, folder / model_path.name)
    for name, template in TEMPLATES.items():
        with_chat_template(model_path, folder / f"tools-{name}.gguf", template)
    # Greedy decoding is only as repeatable as the numerics under it, and the streamed and the
    # non-streamed reply must start from the same ones. With the prompt cache on, the second of
    # two identical requests reuses the first's cells and evaluates the last prompt token on its
    # own (the first evaluated it in one batch with the rest): a different sum order, which at a
    # near-tie flips a greedy choice. One sequence and no prompt cache: every request evaluates
    # its whole prompt in one batch into the same cells.
    settings = make_settings(folder, prompt_cache="off", n_parallel=1)
    # And the same grammar engine: each model builds llguidance's view of its vocabulary in the
    # background, and until that is ready llama.cpp's grammar serves (no fast-forward), which
    # may spell the markup in other tokens. Every request here waits for llguidance.
    ready_matcher = masks.MaskTokenizer.matcher
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(masks.MaskTokenizer, "matcher",
                      lambda self, gbnf: ready_matcher(self, gbnf) if self.wait(300) else None)
        with running_server(settings) as url:
            yield OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=600)


def streamed(client: OpenAI, **body) -> tuple[str, dict[int, dict], str | None]:
    """A streamed chat reply reassembled: content, {index: {name, arguments}}, finish_reason."""
    content, calls, reason = "", {}, None
    for chunk in client.chat.completions.create(stream=True, **body):
        choice = chunk.choices[0]
        content += choice.delta.content or ""
        for tc in choice.delta.tool_calls or []:
            call = calls.setdefault(tc.index, {"name": "", "arguments": ""})
            call["name"] += (tc.function.name or "") if tc.function else ""
            call["arguments"] += (tc.function.arguments or "") if tc.function else ""
        reason = choice.finish_reason or reason
    return content, calls, reason


@pytest.mark.parametrize("markup", list(TEMPLATES))
def test_forced_call_in_the_templates_markup_comes_back_as_tool_calls(markup_client, markup):
    model = f"tools-{markup}"
    root = str(markup_client.base_url).rstrip("/").removesuffix("/v1")
    prompt = requests.post(f"{root}/extras/apply-template", timeout=30, json={
        "model": model, "messages": ASK, "tools": [WEATHER, TIME]}).json()["prompt"]
    # The template renders the tools itself (no Hermes block injected).
    assert "<tools>" not in prompt and "get_time" in prompt
    body = dict(model=model, messages=ASK, tools=[WEATHER, TIME], temperature=0,
                max_tokens=160, tool_choice={"type": "function",
                                             "function": {"name": "get_weather"}})
    reply = markup_client.chat.completions.create(**body)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.function.name == "get_weather"
    args = json.loads(call.function.arguments)
    assert set(args) == {"city", "unit"} and args["unit"] in ("celsius", "fahrenheit")
    content, calls, reason = streamed(markup_client, **body)
    assert content == "" and reason == "tool_calls"
    assert calls == {0: {"name": "get_weather", "arguments": call.function.arguments}}


@pytest.mark.parametrize("tool_choice", ["required", "auto"])
def test_streamed_reply_reassembles_to_the_non_streamed_one(markup_client, tool_choice):
    body = dict(model=MODEL, messages=ASK, tools=[WEATHER, TIME], temperature=0,
                max_tokens=120, tool_choice=tool_choice)
    whole = markup_client.chat.completions.create(**body).choices[0]
    content, calls, reason = streamed(markup_client, **body)
    assert reason == whole.finish_reason
    assert content == (whole.message.content or "")
    assert calls == {i: {"name": c.function.name, "arguments": c.function.arguments}
                     for i, c in enumerate(whole.message.tool_calls or [])}
    if tool_choice == "required":
        assert calls and reason == "tool_calls"
