"""Schema-guided output through the server, on a varied slice of the grammar test cases: every
schema is valid and supported and its shortest instance takes far fewer than 96 tokens, so every
answer is a 200 with data that fits (formats checked) within the budget, open-ended schemas
included: budget-aware closing ends what the greedy model would not."""

from __future__ import annotations

import json

import pytest
import requests
from support.grammar_cases import CASES
from support.http_server import MODEL
from support.oracle import schema_problems

# Every sixth case: plain types, consts with escapes, patterns, formats, bounds, arrays, refs,
# and open ones ("string", "array-nested", "obj-addl-true") where the greedy model writes on
# until the budget guide closes the value.
SAMPLE = CASES[::6]
# The five that ran to max_tokens (greedy) before the budget guide: a string of digit-free text,
# open arrays and objects. Through chat they must end "stop" with the JSON whole.
BY_ID = {c.id: c for c in CASES}
OPEN = [BY_ID[i] for i in ("string", "pattern-negated", "array-nested", "obj-addl-true",
                           "obj-required-undeclared")]
TEXT = "Alice Martin, 31, paid 12.50 EUR on 2024-03-05 at 10:20:00Z for order A-17."


@pytest.mark.parametrize("case", SAMPLE, ids=[c.id for c in SAMPLE])
def test_extract_fits(server, case):
    r = requests.post(f"{server}/v1/extract", json={"text": TEXT, "schema": case.schema,
                                                    "max_tokens": 96}, timeout=300)
    assert r.status_code == 200, r.text
    assert schema_problems(r.json()["data"], case.schema) == []
    assert r.json()["usage"]["completion_tokens"] <= 96


@pytest.mark.parametrize("case", OPEN, ids=[c.id for c in OPEN])
def test_response_format_fits(server, case):
    body = {"messages": [{"role": "user", "content": TEXT}], "max_tokens": 96, "temperature": 0,
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "x", "schema": case.schema}}}
    r = requests.post(f"{server}/v1/chat/completions", json=body, timeout=300)
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert schema_problems(json.loads(choice["message"]["content"]), case.schema) == []
    assert r.json()["usage"]["completion_tokens"] <= 96


def test_worker_still_serves(server):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Say hi."}],
            "max_tokens": 4, "temperature": 0}
    r = requests.post(f"{server}/v1/chat/completions", json=body, timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] >= 1
