"""The Anthropic Messages API (/v1/messages), called through the official anthropic SDK."""

from __future__ import annotations

import json

import anthropic
import jsonschema
import pytest
import requests
from support.http_server import MODEL

WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 40}},
        "required": ["city"],
    },
}
ASK = [{"role": "user", "content": "What is the capital of France?"}]
# Recent SDKs dropped the sampling fields from their signatures; the API still takes them.
T0 = {"extra_body": {"temperature": 0}}


@pytest.fixture(scope="module")
def claude(server: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server, api_key="unused", max_retries=0, timeout=120)


def test_create_answers_in_content_blocks(claude):
    reply = claude.messages.create(model=MODEL, max_tokens=16, messages=ASK, **T0,
                                   system=[{"type": "text", "text": "You are a geographer."}])
    assert reply.id.startswith("msg_") and reply.type == "message"
    assert reply.role == "assistant" and reply.model == MODEL
    assert [b.type for b in reply.content] == ["text"]
    assert reply.content[0].text.strip()
    assert reply.stop_reason in ("end_turn", "max_tokens")
    assert reply.usage.input_tokens > 10 and 0 < reply.usage.output_tokens <= 16


def test_max_tokens_and_stop_sequences_name_the_reason(claude):
    cut = claude.messages.create(model=MODEL, max_tokens=3, messages=ASK, **T0)
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens == 3
    text = claude.messages.create(model=MODEL, max_tokens=24, messages=ASK, **T0)
    word = text.content[0].text.split()[1]
    stopped = claude.messages.create(model=MODEL, max_tokens=24, messages=ASK, **T0,
                                     stop_sequences=[word])
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == word
    assert word not in stopped.content[0].text


def test_stream_events_match_the_whole_reply(claude):
    kwargs = dict(model=MODEL, max_tokens=20, messages=ASK, **T0)
    whole = claude.messages.create(**kwargs)
    with claude.messages.stream(**kwargs) as stream:
        events = list(stream)
        final = stream.get_final_message()
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert kinds[1:4] == ["content_block_start", "content_block_delta", "text"]
    assert "content_block_stop" in kinds and "message_delta" in kinds
    assert final.content[0].text == whole.content[0].text
    assert final.stop_reason == whole.stop_reason
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert final.usage.input_tokens == whole.usage.input_tokens


def test_tool_use_then_tool_result(claude):
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    reply = claude.messages.create(model=MODEL, max_tokens=60, messages=ask, tools=[WEATHER],
                                   tool_choice={"type": "tool", "name": "get_weather"},
                                   **T0)
    assert reply.stop_reason == "tool_use"
    use = reply.content[-1]
    assert use.type == "tool_use" and use.name == "get_weather" and use.id.startswith("toolu_")
    jsonschema.validate(use.input, WEATHER["input_schema"])

    follow = claude.messages.create(
        model=MODEL, max_tokens=12, tools=[WEATHER], tool_choice={"type": "none"}, **T0,
        messages=[*ask, {"role": "assistant", "content": reply.content},
                  {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                                "content": "18 degrees and sunny"}]}],
    )
    assert [b.type for b in follow.content] == ["text"]
    # The call and its result are in the prompt (tool_choice none leaves the tool list out).
    alone = claude.messages.count_tokens(model=MODEL, messages=ask).input_tokens
    assert follow.usage.input_tokens > alone + 20


def test_streamed_tool_use_arrives_as_input_json(claude):
    with claude.messages.stream(model=MODEL, max_tokens=60, tools=[WEATHER], **T0,
                                tool_choice={"type": "any"},
                                messages=[{"role": "user", "content": "Weather in Rome?"}]
                                ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    block = final.content[-1]
    assert block.name == "get_weather"
    jsonschema.validate(block.input, WEATHER["input_schema"])
    # The input streams as the model writes it, token by token, inside its own block.
    index = len(final.content) - 1
    raw = [e for e in events if e.type in ("content_block_start", "content_block_delta",
                                           "content_block_stop") and e.index == index]
    assert raw[0].type == "content_block_start" and raw[0].content_block.type == "tool_use"
    assert raw[0].content_block.id == block.id and raw[0].content_block.input == {}
    assert raw[-1].type == "content_block_stop"
    fragments = [e.delta.partial_json for e in raw[1:-1]]
    assert all(e.delta.type == "input_json_delta" for e in raw[1:-1]) and len(fragments) > 1
    assert json.loads("".join(fragments)) == block.input


def test_count_tokens_matches_usage(claude):
    kwargs = dict(model=MODEL, messages=ASK, system="Be brief.", tools=[WEATHER])
    counted = claude.messages.count_tokens(**kwargs)
    used = claude.messages.create(max_tokens=1, **kwargs)
    assert counted.input_tokens == used.usage.input_tokens > 50


def test_errors_use_anthropics_shape(claude, server):
    with pytest.raises(anthropic.NotFoundError) as missing:
        claude.messages.create(model="no-such-model", max_tokens=5, messages=ASK)
    assert missing.value.body["type"] == "error"
    assert missing.value.body["error"]["type"] == "not_found_error"
    r = requests.post(f"{server}/v1/messages", json={"model": MODEL, "messages": ASK},
                      timeout=30)
    assert r.status_code == 400
    assert r.json() == {"type": "error", "error": {"type": "invalid_request_error",
                                                  "message": "max_tokens: Field required"}}


def test_x_api_key_authenticates(keyed_server):
    good = anthropic.Anthropic(base_url=keyed_server, api_key="sk-alice", max_retries=0)
    assert good.messages.count_tokens(model=MODEL, messages=ASK).input_tokens > 0
    bad = anthropic.Anthropic(base_url=keyed_server, api_key="wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as refused:
        bad.messages.count_tokens(model=MODEL, messages=ASK)
    assert refused.value.body["error"]["type"] == "authentication_error"


def test_output_config_format_constrains_the_reply(claude):
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30}},
              "required": ["city"], "additionalProperties": False}
    reply = claude.messages.create(model=MODEL, max_tokens=40, messages=ASK, **T0,
                                   output_config={"format": {"type": "json_schema",
                                                             "schema": schema}})
    import json

    jsonschema.validate(json.loads(reply.content[0].text), schema)


def test_tool_use_cut_by_max_tokens_says_so(claude):
    # Forced and cut inside the arguments (the markup takes ~18 tokens of this model): the
    # block is there with what could be read of its input, and the reason is max_tokens, not
    # tool_use (a cut call is no call to run).
    for stream in (False, True):
        kwargs = dict(model=MODEL, max_tokens=20, tools=[WEATHER], **T0,
                      tool_choice={"type": "tool", "name": "get_weather"},
                      messages=[{"role": "user", "content": "Weather in Rome?"}])
        if stream:
            with claude.messages.stream(**kwargs) as s:
                list(s)
                reply = s.get_final_message()
        else:
            reply = claude.messages.create(**kwargs)
        assert reply.stop_reason == "max_tokens", stream
        assert reply.usage.output_tokens == 20
        assert [b.type for b in reply.content][-1:] == ["tool_use"], reply.content


STORY = [{"role": "user", "content": "Tell me a story about a fox."}]


def test_top_k_one_samples_the_greedy_reply(claude):
    # top_k=1 leaves one candidate: at temperature 1 the reply is the greedy one. A server that
    # dropped top_k would sample freely (checked: without it, temperature 1 wanders off).
    def text(**sampling: float) -> str:
        reply = claude.messages.create(model=MODEL, max_tokens=16, messages=STORY,
                                       extra_body=sampling)
        return reply.content[0].text

    text(temperature=0)  # warm: a prompt read whole and one read from the cache differ a hair
    greedy = text(temperature=0)
    assert text(temperature=1.0, top_k=1) == greedy
    assert any(text(temperature=1.0) != greedy for _ in range(3))


def test_tool_result_is_error_prefixes_error(claude, server):
    # Documented: is_error puts "Error: " before the result's text. The prompt grows by exactly
    # what the tokenizer makes of that prefix, counted here from plain text.
    use = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Rome"}}

    def counted(**flag: bool) -> int:
        messages = [{"role": "user", "content": "Weather in Rome?"},
                    {"role": "assistant", "content": [use]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                                  "content": "city not found", **flag}]}]
        return claude.messages.count_tokens(model=MODEL, messages=messages,
                                            tools=[WEATHER]).input_tokens

    def tokens(text: str) -> int:
        return requests.post(f"{server}/extras/tokenize/count", timeout=30, json={
            "input": text, "add_special": False}).json()["count"]

    prefix = tokens("Error: city not found") - tokens("city not found")
    assert prefix >= 2
    assert counted(is_error=True) == counted(is_error=False) + prefix == counted() + prefix


def _sse(lines) -> tuple[str, dict]:
    """The next (event name, data) of a named-event stream."""
    name = None
    for line in lines:
        if line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("data: "):
            return name, json.loads(line[len("data: "):])
    raise AssertionError("the stream ended")


def test_failure_after_the_stream_started_is_an_error_event(models_dir):
    # One sequence: a chat stream holds it, so a Messages stream waits in the queue after its
    # message_start went out. Shutting down (what SIGTERM does) fails the waiting request: its
    # status is sent, so the failure arrives as Anthropic's `event: error`, then the stream ends.
    import time

    from support.http_server import make_settings, serving

    from slm_api.app import create_app
    from slm_api.plumbing import state

    app = create_app(make_settings(models_dir, n_parallel=1))
    with serving(app) as url:
        busy = requests.post(f"{url}/v1/chat/completions", stream=True, timeout=120, json={
            "messages": STORY, "max_tokens": 400, "temperature": 0, "stream": True})
        busy_lines = busy.iter_lines(decode_unicode=True)
        assert next(line for line in busy_lines if line.startswith("data: "))
        with requests.post(f"{url}/v1/messages", stream=True, timeout=120, json={
                "model": MODEL, "max_tokens": 8, "messages": ASK, "stream": True}) as r:
            assert r.status_code == 200 and r.headers["Content-Type"].startswith(
                "text/event-stream")
            lines = r.iter_lines(decode_unicode=True)
            assert _sse(lines)[0] == "message_start"
            state.engine(app).drain(time.monotonic() + 5)
            rest = []
            while True:
                try:
                    rest.append(_sse(lines))
                except AssertionError:
                    break
        busy.close()
    names = [name for name, _ in rest]
    assert names[-1] == "error", rest
    name, data = rest[-1]
    assert data["type"] == "error" and data["error"]["type"] == "overloaded_error", data
    assert "shutting down" in data["error"]["message"]
    assert "message_stop" not in names and "content_block_delta" not in names
