"""Schema-guided output through the server, on a varied slice of the grammar test cases:
every answer is data that fits (formats checked) or a clear 4xx/502, and the worker lives."""

from __future__ import annotations

import pytest
import requests
from grammar_cases import CASES

from slm_api.grammar import validation_errors

# Every sixth case: plain types, consts with escapes, patterns, formats, bounds, arrays, refs...
SAMPLE = CASES[::6]
TEXT = "Alice Martin, 31, paid 12.50 EUR on 2024-03-05 at 10:20:00Z for order A-17."


@pytest.mark.parametrize("case", SAMPLE, ids=[c.id for c in SAMPLE])
def test_extract_fits_or_fails_clearly(server, case):
    r = requests.post(f"{server}/v1/extract", json={"text": TEXT, "schema": case.schema,
                                                    "max_tokens": 96}, timeout=120)
    assert r.status_code in (200, 400, 502), r.text
    if r.status_code == 200:
        assert validation_errors(r.json()["data"], case.schema) == []
    else:
        assert r.json()["error"]["message"] and "Traceback" not in r.text


@pytest.mark.parametrize("case", SAMPLE[:6], ids=[c.id for c in SAMPLE[:6]])
def test_response_format_fits_or_fails_clearly(server, case):
    body = {"messages": [{"role": "user", "content": TEXT}], "max_tokens": 96, "temperature": 0,
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "x", "schema": case.schema}}}
    r = requests.post(f"{server}/v1/chat/completions", json=body, timeout=120)
    assert r.status_code in (200, 400, 502), r.text
    if r.status_code == 200 and r.json()["choices"][0]["finish_reason"] == "stop":
        import json

        data = json.loads(r.json()["choices"][0]["message"]["content"])
        assert validation_errors(data, case.schema) == []


def test_worker_still_serves(server):
    assert requests.get(f"{server}/health", timeout=10).status_code == 200
