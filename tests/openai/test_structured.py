"""response_format: json_object and json_schema replies parse and validate."""

from __future__ import annotations

import json

import jsonschema
import requests
from pydantic import BaseModel, Field
from support.http_server import MODEL

ASK = [{"role": "user", "content": "Describe a fictional person: name and age."}]


def test_json_object(client):
    reply = client.chat.completions.create(
        model=MODEL,
        messages=ASK,
        response_format={"type": "json_object"},
        temperature=0,
        max_tokens=200,
    )
    assert reply.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(reply.choices[0].message.content), dict)


def test_json_schema(client):
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 30},
            "age": {"type": "integer", "minimum": 0, "maximum": 120},
        },
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    reply = client.chat.completions.create(
        model=MODEL,
        messages=ASK,
        temperature=0,
        max_tokens=80,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": schema, "strict": True},
        },
    )
    assert reply.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(reply.choices[0].message.content), schema)


def test_sdk_parse_with_pydantic(client):
    class Person(BaseModel):
        # Bounds reach the grammar, so the reply always completes within max_tokens.
        name: str = Field(max_length=30)
        age: int = Field(ge=0, le=120)

    reply = client.chat.completions.parse(
        model=MODEL, messages=ASK, response_format=Person, temperature=0, max_tokens=80
    )
    person = reply.choices[0].message.parsed
    assert isinstance(person, Person) and isinstance(person.age, int)


def test_bad_schema_is_400(server):
    body = {
        "messages": ASK,
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "x",
                "schema": {"type": "object", "properties": {"a": {"type": 5}}},
            },
        },
    }
    r = requests.post(f"{server}/v1/chat/completions", json=body, timeout=30)
    assert r.status_code == 400
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == ("invalid_schema", "type")
