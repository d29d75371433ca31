"""Schema-guided extraction: the reply always fits the schema, or the request is refused."""

from __future__ import annotations

import jsonschema
import requests

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
    assert body["model"] == "gemma-3-270m-q4_k_m"
    assert body["latency_ms"] > 0 and body["usage"]["completion_tokens"] > 0
    jsonschema.validate(body["data"], ORDER_SCHEMA)


def test_no_schema_gives_a_json_object(server):
    r = requests.post(
        f"{server}/v1/extract",
        json={"text": TEXT, "max_tokens": 300, "instructions": "List the items bought."},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    assert isinstance(r.json()["data"], dict)
    assert r.json()["usage"]["completion_tokens"] <= 300


def test_invalid_schema_is_refused_with_its_problem(server):
    r = requests.post(
        f"{server}/v1/extract", json={"text": TEXT, "schema": {"type": "objekt"}}, timeout=30
    )
    assert r.status_code == 400
    assert "objekt" in r.json()["error"]["message"]


def test_truncated_output_is_an_error_not_a_success(server):
    r = requests.post(
        f"{server}/v1/extract",
        json={"text": TEXT, "schema": ORDER_SCHEMA, "max_tokens": 5},
        timeout=60,
    )
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "output_truncated"


def test_missing_text(server):
    r = requests.post(f"{server}/v1/extract", json={"schema": ORDER_SCHEMA}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == "text"
