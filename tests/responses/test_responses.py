"""The OpenAI Responses API (/v1/responses), called through the official openai SDK."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field
from support.http_server import MODEL

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 40}},
        "required": ["city"],
    },
}
QUESTION = "What is the capital of France?"


def test_create_returns_a_message_item(client):
    r = client.responses.create(model=MODEL, input=QUESTION, max_output_tokens=12, temperature=0)
    assert r.id.startswith("resp_") and r.object == "response" and r.model == MODEL
    assert r.status in ("completed", "incomplete")
    message = r.output[0]
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "output_text" and r.output_text.strip()
    assert r.usage.input_tokens > 5 and 0 < r.usage.output_tokens <= 12
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens


def test_cut_short_is_incomplete(client):
    r = client.responses.create(model=MODEL, input=QUESTION, max_output_tokens=2, temperature=0,
                                store=False)
    assert r.status == "incomplete"
    assert r.incomplete_details.reason == "max_output_tokens"
    assert r.usage.output_tokens == 2


def test_stream_follows_the_documented_event_order(client):
    kwargs = dict(model=MODEL, input=QUESTION, max_output_tokens=12, temperature=0, store=False)
    whole = client.responses.create(**kwargs)
    events = list(client.responses.create(**kwargs, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:5] == ["response.created", "response.in_progress",
                         "response.output_item.added", "response.content_part.added",
                         "response.output_text.delta"]
    done = "response.incomplete" if whole.status == "incomplete" else "response.completed"
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", done]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == whole.output_text == events[-1].response.output_text
    assert events[-1].response.usage.output_tokens == whole.usage.output_tokens
    assert len({e.response.id for e in events if hasattr(e, "response")}) == 1


def test_previous_response_id_continues_and_the_store_answers(client):
    first = client.responses.create(model=MODEL, input="My name is Ada.", max_output_tokens=8,
                                    temperature=0, instructions="Be brief.",
                                    metadata={"topic": "names"})
    assert client.responses.retrieve(first.id).model_dump() == first.model_dump()
    second = client.responses.create(model=MODEL, input="What is my name?",
                                     previous_response_id=first.id, max_output_tokens=8,
                                     temperature=0)
    assert second.previous_response_id == first.id
    # The earlier turn (question and reply) is part of the prompt.
    alone = client.responses.create(model=MODEL, input="What is my name?", max_output_tokens=1,
                                    store=False)
    assert second.usage.input_tokens >= alone.usage.input_tokens + first.usage.output_tokens + 4

    assert client.responses.delete(first.id) is None
    with pytest.raises(openai.NotFoundError) as gone:
        client.responses.retrieve(first.id)
    assert gone.value.body["code"] == "response_not_found"
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=MODEL, input="Hi", previous_response_id=first.id)


def test_instructions_are_not_carried_and_metadata_comes_back(client, server):
    # A long system instruction on the first turn only: were it carried over by
    # previous_response_id, the second prompt would hold all of its tokens again.
    import requests

    instructions = "Answer in English, politely and briefly. " * 20
    count = requests.post(f"{server}/extras/tokenize/count", json={
        "input": instructions, "add_special": False}, timeout=30).json()["count"]
    first = client.responses.create(model=MODEL, input="My name is Ada.", max_output_tokens=4,
                                    temperature=0, instructions=instructions,
                                    metadata={"topic": "names", "user": "u-1"})
    assert first.metadata == {"topic": "names", "user": "u-1"}
    assert client.responses.retrieve(first.id).metadata == first.metadata
    assert first.instructions == instructions and first.usage.input_tokens > count
    second = client.responses.create(model=MODEL, input="What is my name?", max_output_tokens=1,
                                     previous_response_id=first.id)
    assert second.instructions is None and second.metadata == {}
    # Earlier input and output are carried; the instructions are not.
    assert second.usage.input_tokens < count, (second.usage.input_tokens, count)
    assert second.usage.input_tokens > first.usage.input_tokens - count


def test_store_false_keeps_nothing(client):
    r = client.responses.create(model=MODEL, input=QUESTION, max_output_tokens=1, store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)


def test_function_call_then_its_output(client):
    call = client.responses.create(model=MODEL, input="What is the weather in Paris?",
                                   tools=[WEATHER], tool_choice="required", temperature=0,
                                   max_output_tokens=60)
    assert call.status == "completed"
    item = call.output[-1]
    assert item.type == "function_call" and item.name == "get_weather"
    assert item.call_id.startswith("call_") and item.id.startswith("fc_")
    jsonschema.validate(json.loads(item.arguments), WEATHER["parameters"])

    answer = client.responses.create(
        model=MODEL, previous_response_id=call.id, tools=[WEATHER], tool_choice="none",
        input=[{"type": "function_call_output", "call_id": item.call_id,
                "output": "18 degrees and sunny"}],
        temperature=0, max_output_tokens=12,
    )
    assert [o.type for o in answer.output] == ["message"]
    # The call and its output are in the prompt (tool_choice none leaves the tool list out).
    alone = client.responses.create(model=MODEL, input="What is the weather in Paris?",
                                    max_output_tokens=1, store=False)
    assert answer.usage.input_tokens > alone.usage.input_tokens + 20


def test_streamed_function_call(client):
    events = list(client.responses.create(
        model=MODEL, input="Weather in Rome?", tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"}, temperature=0,
        max_output_tokens=60, stream=True, store=False))
    args = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert args.name == "get_weather"
    # The arguments stream as the model writes them, between the item's added and done events.
    mine = [e for e in events if getattr(e, "output_index", None) == args.output_index]
    assert mine[0].type == "response.output_item.added" and mine[0].item.arguments == ""
    assert [e.type for e in mine[-2:]] == ["response.function_call_arguments.done",
                                           "response.output_item.done"]
    deltas = mine[1:-2]
    assert {e.type for e in deltas} == {"response.function_call_arguments.delta"}
    assert len(deltas) > 1 and all(e.item_id == args.item_id for e in deltas)
    assert "".join(e.delta for e in deltas) == args.arguments
    jsonschema.validate(json.loads(args.arguments), WEATHER["parameters"])
    assert events[-1].type == "response.completed"
    assert events[-1].response.output[-1].arguments == args.arguments


class City(BaseModel):
    name: str = Field(max_length=30)
    country: str = Field(max_length=30)


def test_structured_text_format(client):
    parsed = client.responses.parse(model=MODEL, input=QUESTION, text_format=City,
                                    temperature=0, max_output_tokens=60, store=False)
    assert isinstance(parsed.output_parsed, City)
    r = client.responses.create(model=MODEL, input=QUESTION, temperature=0, store=False,
                                max_output_tokens=60, text={"format": {"type": "json_object"}})
    assert isinstance(json.loads(r.output_text), dict)


def test_keys_see_only_their_own_responses(keyed_server):
    alice = openai.OpenAI(base_url=f"{keyed_server}/v1", api_key="sk-alice", max_retries=0)
    bob = openai.OpenAI(base_url=f"{keyed_server}/v1", api_key="sk-bob", max_retries=0)
    r = alice.responses.create(model=MODEL, input="Hi", max_output_tokens=1)
    assert alice.responses.retrieve(r.id).id == r.id
    with pytest.raises(openai.NotFoundError):
        bob.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError):
        bob.responses.create(model=MODEL, input="Hi", previous_response_id=r.id)
    with pytest.raises(openai.NotFoundError):
        bob.responses.delete(r.id)
    alice.responses.delete(r.id)
