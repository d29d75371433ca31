"""Function calling: tools in the prompt, forced calls by grammar, results back into the prompt."""

from __future__ import annotations

import json

import jsonschema
import requests
from support.http_server import MODEL

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 40},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a timezone",
        "parameters": {
            "type": "object",
            "properties": {"tz": {"type": "string", "maxLength": 40}},
            "required": ["tz"],
        },
    },
}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


def test_required_tool_call(client):
    reply = client.chat.completions.create(
        model=MODEL,
        messages=ASK,
        tools=[WEATHER, TIME],
        tool_choice="required",
        temperature=0,
        max_tokens=150,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name in ("get_weather", "get_time")
    schema = (WEATHER if call.function.name == "get_weather" else TIME)["function"]["parameters"]
    jsonschema.validate(json.loads(call.function.arguments), schema)


def test_named_tool_choice(client):
    reply = client.chat.completions.create(
        model=MODEL,
        messages=ASK,
        tools=[WEATHER, TIME],
        temperature=0,
        max_tokens=150,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    call = reply.choices[0].message.tool_calls[0]
    assert call.function.name == "get_time"
    assert isinstance(json.loads(call.function.arguments)["tz"], str)


# What pydantic's model_json_schema() gives for a tool with a nested model (instructor, the
# Agents SDK and LangChain send these): the nested model lives in $defs, reached by $ref.
BOOKING = {
    "type": "function",
    "function": {
        "name": "book_table",
        "description": "Book a table",
        "parameters": {
            "$defs": {"Guest": {"type": "object", "title": "Guest",
                                "properties": {"name": {"type": "string", "maxLength": 20}},
                                "required": ["name"]}},
            "type": "object",
            "properties": {"guests": {"type": "array", "items": {"$ref": "#/$defs/Guest"},
                                      "minItems": 1, "maxItems": 2},
                           "host": {"$ref": "#/$defs/Guest"}},
            "required": ["guests", "host"],
        },
    },
}


def test_forced_tool_whose_parameters_keep_models_in_defs(client):
    # Nested under the call object the grammar is built from, "#/$defs/Guest" must still
    # mean the tool's own $defs (it was a 400 "$ref does not resolve"), alone and beside others.
    for tools, choice in (([BOOKING], {"type": "function", "function": {"name": "book_table"}}),
                          ([WEATHER, BOOKING], "required")):
        reply = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Book for Ann and Bob."}],
            tools=tools, tool_choice=choice, temperature=0, max_tokens=120)
        call = reply.choices[0].message.tool_calls[0]
        spec = next(t for t in tools if t["function"]["name"] == call.function.name)
        jsonschema.validate(json.loads(call.function.arguments), spec["function"]["parameters"])
    assert call.function.name in ("book_table", "get_weather")


def test_streamed_tool_call_assembles(client):
    stream = client.chat.completions.create(
        model=MODEL,
        messages=ASK,
        tools=[WEATHER],
        stream=True,
        tool_choice="required",
        temperature=0,
        max_tokens=150,
    )
    name, arguments, reasons = "", "", []
    for chunk in stream:
        delta = chunk.choices[0].delta
        for tc in delta.tool_calls or []:
            name += tc.function.name or ""
            arguments += tc.function.arguments or ""
        if chunk.choices[0].finish_reason:
            reasons.append(chunk.choices[0].finish_reason)
    assert name == "get_weather" and reasons == ["tool_calls"]
    jsonschema.validate(json.loads(arguments), WEATHER["function"]["parameters"])


def test_tool_result_round_trip(client, server):
    messages = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "arguments": '{"city": "Paris", "unit": "celsius"}',
                    },
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature": 21}'},
    ]
    prompt = requests.post(
        f"{server}/extras/apply-template",
        json={"messages": messages, "tools": [WEATHER]},
        timeout=30,
    ).json()
    assert '"temperature": 21' in prompt["prompt"]
    assert "get_weather" in prompt["prompt"] and "<tool_call>" in prompt["prompt"]
    # What the 270M model says next is its own affair; what the server owes is a text reply
    # (tool_choice "none") that ends by the budget exactly when it used the whole budget.
    reply = client.chat.completions.create(
        model=MODEL, messages=messages, tools=[WEATHER], tool_choice="none", temperature=0,
        max_tokens=24,
    )
    choice = reply.choices[0]
    assert choice.message.tool_calls is None and isinstance(choice.message.content, str)
    assert (choice.finish_reason == "length") == (reply.usage.completion_tokens == 24)
    assert choice.finish_reason in ("stop", "length")


def test_tool_choice_none_and_errors(server):
    body = {"messages": ASK, "tools": [WEATHER], "tool_choice": "none", "max_tokens": 8}
    r = requests.post(f"{server}/v1/chat/completions", json=body, timeout=60)
    assert r.status_code == 200 and "tool_calls" not in r.json()["choices"][0]["message"]
    body["tool_choice"] = {"type": "function", "function": {"name": "nope"}}
    r = requests.post(f"{server}/v1/chat/completions", json=body, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"] == "tool_choice"
