"""Schema-guided extraction: the reply always fits the schema, or the request is refused."""

from __future__ import annotations

import jsonschema
import pytest
import requests
from support.http_server import MODEL, make_settings, running_server
from support.oracle import shortest_tokens

TEXT = (
    "Order 1182 was placed by Alice Martin. She bought 2 blue mugs at 8 euros each and "
    "1 red teapot at 25 euros. The order has shipped."
)

ORDER_SCHEMA = {
    "type": "object",
    "properties": {
        "order_id": {"type": "integer"},
        "customer": {"type": "string", "maxLength": 40},
        "status": {"type": "string", "enum": ["pending", "shipped", "delivered"]},
        "items": {
            "type": "array",
            "minItems": 1,
            "maxItems": 4,
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 30},
                    "quantity": {"type": "integer", "minimum": 1, "maximum": 99},
                },
                "required": ["name", "quantity"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["order_id", "customer", "status", "items"],
    "additionalProperties": False,
}


def test_nested_schema_extraction_fits(server):
    r = requests.post(
        f"{server}/v1/extract",
        json={"text": TEXT, "schema": ORDER_SCHEMA, "max_tokens": 200},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "extract.result"
    assert body["model"] == MODEL
    assert body["latency_ms"] > 0 and body["usage"]["completion_tokens"] > 0
    jsonschema.validate(body["data"], ORDER_SCHEMA)


@pytest.mark.parametrize("schema", [None, {}, {"type": "object"}, {"type": "array"}])
def test_unbounded_schemas_close_within_max_tokens(server, schema):
    # Nothing in these schemas ends a string or an array: the budget does.
    body = {"text": TEXT, "max_tokens": 24, "instructions": "List the items bought."}
    if schema is not None:
        body["schema"] = schema
    r = requests.post(f"{server}/v1/extract", json=body, timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] <= 24
    jsonschema.validate(r.json()["data"], schema if schema is not None else {"type": "object"})


def test_invalid_schema_is_refused_with_its_problem(server):
    r = requests.post(
        f"{server}/v1/extract", json={"text": TEXT, "schema": {"type": "objekt"}}, timeout=30
    )
    assert r.status_code == 400
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == ("invalid_schema", "type")
    assert "objekt" in r.json()["error"]["message"]


def test_max_tokens_below_the_shortest_output_is_the_clients_400(server):
    r = requests.post(
        f"{server}/v1/extract",
        json={"text": TEXT, "schema": ORDER_SCHEMA, "max_tokens": 5},
        timeout=60,
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "max_tokens_too_small" and error["param"] == "max_tokens"
    # The shortest JSON that fits, counted here (not read from the message), is named in it.
    needed = shortest_tokens(server, ORDER_SCHEMA)
    assert needed > 5 and f"at least {needed}" in error["message"], (needed, error)
    # The named budget is enough: the reply is complete and fits.
    r = requests.post(
        f"{server}/v1/extract",
        json={"text": TEXT, "schema": ORDER_SCHEMA, "max_tokens": needed},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    jsonschema.validate(r.json()["data"], ORDER_SCHEMA)
    assert r.json()["usage"]["completion_tokens"] <= needed


def test_missing_text(server):
    r = requests.post(f"{server}/v1/extract", json={"schema": ORDER_SCHEMA}, timeout=30)
    assert r.status_code == 400
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == ("invalid_value", "text")


def test_cut_without_budget_guide_names_no_budget_already_given(models_dir):
    # STRUCTURED_BUDGET=0: nothing closes the string, so a copy of the text runs past 8 tokens
    # though the shortest JSON ('""') fits: a 400 that says the output was cut, not one that
    # asks for "at least" a budget the client already gave.
    with running_server(make_settings(models_dir, structured_budget=False)) as url:
        r = requests.post(f"{url}/v1/extract", json={
            "text": TEXT, "schema": {"type": "string"}, "max_tokens": 8,
            "instructions": "Copy the whole text below, word for word, as one JSON string."},
            timeout=120)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "output_truncated" and error["param"] == "max_tokens"
    assert "max_tokens (8)" in error["message"]
