"""Bad input gets a 4xx OpenAI error envelope, and the server keeps serving."""

from __future__ import annotations

import pytest
import requests

CHAT = "/v1/chat/completions"
GOOD = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}


def assert_envelope(r: requests.Response, status: int, param: str | None = "any") -> dict:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"] and "Traceback" not in r.text
    if param != "any":
        assert error["param"] == param
    return error


@pytest.mark.parametrize(
    "body, param",
    [
        ({}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": "hello"}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
        ({**GOOD, "max_tokens": 0}, "max_tokens"),
        ({**GOOD, "max_tokens": -5}, "max_tokens"),
        ({**GOOD, "max_tokens": "many"}, "max_tokens"),
        ({**GOOD, "temperature": "hot"}, "temperature"),
        ({**GOOD, "temperature": 7}, "temperature"),
        ({**GOOD, "stop": 5}, "stop"),
        ({**GOOD, "n": 9}, "n"),  # above MAX_N
        ({**GOOD, "logit_bias": {"not-a-token": 1}}, "logit_bias"),
        ({**GOOD, "max_tokens": 10**9}, "max_tokens"),
    ],
)
def test_bad_chat_bodies(server, body, param):
    error = assert_envelope(requests.post(server + CHAT, json=body, timeout=30), 400, param)
    assert error["type"] == "invalid_request_error"


def test_malformed_json(server):
    r = requests.post(
        server + CHAT, data="{not json", timeout=30, headers={"Content-Type": "application/json"}
    )
    assert_envelope(r, 400)
    r = requests.post(
        server + CHAT, data="[1, 2]", timeout=30, headers={"Content-Type": "application/json"}
    )
    assert_envelope(r, 400)
    r = requests.post(server + CHAT, data="", timeout=30)
    assert_envelope(r, 400)


def test_prompt_longer_than_the_context(server):
    long_text = "word " * 5000  # the test server's context is 2048 tokens
    body = {"messages": [{"role": "user", "content": long_text}]}
    error = assert_envelope(requests.post(server + CHAT, json=body, timeout=60), 400)
    assert "2048" in error["message"]


def test_prompt_plus_max_tokens_over_the_context(server):
    body = {"messages": [{"role": "user", "content": "word " * 1500}], "max_tokens": 1000}
    error = assert_envelope(requests.post(server + CHAT, json=body, timeout=60), 400)
    assert "1000" in error["message"] and "2048" in error["message"]


def test_unknown_model_and_route(server):
    body = {**GOOD, "model": "no-such-model"}
    error = assert_envelope(requests.post(server + CHAT, json=body, timeout=30), 404, "model")
    assert error["code"] == "model_not_found"
    assert_envelope(requests.get(server + "/v1/nothing-here", timeout=30), 404)
    assert_envelope(requests.get(server + CHAT, timeout=30), 405)


def test_server_still_answers_after_bad_input(server):
    r = requests.post(server + CHAT, json=GOOD, timeout=60)
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["role"] == "assistant"
