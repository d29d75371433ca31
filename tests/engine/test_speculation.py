"""Prompt-lookup speculation changes how fast, never what: the same requests against a server
with LOOKUP_DRAFT_MAX=8 and one with it off give the same replies, token for token, sampled
ones included (each committed token is drawn from its own row exactly as plain decoding draws
it), while the first server really does decode and keep guessed tokens."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from support.http_server import MODEL, make_settings, metric, running_server

DOCUMENT = (
    "Shipping notice 2291. The parcel for Bruno Keller, Lindenstrasse 12, 8001 Zurich, left "
    "the warehouse in Basel on 4 March 2024 with carrier SwissPost, tracking number "
    "99.60.112233.44556677. It holds two items: a walnut bookshelf (model Aalto 3) priced at "
    "329.00 CHF and a reading lamp (model Lumen Mini) priced at 79.50 CHF. Delivery is "
    "expected on 6 March 2024 between 9:00 and 12:00."
)
REPEAT = [{"role": "user", "content": "Repeat this text exactly, word for word:\n\n" + DOCUMENT}]
SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"}, "street": {"type": "string"}, "city": {"type": "string"},
        "carrier": {"type": "string"}, "tracking_number": {"type": "string"},
        "items": {"type": "array", "maxItems": 3, "items": {"type": "object", "properties": {
            "product": {"type": "string"}, "price_chf": {"type": "number"}},
            "required": ["product", "price_chf"], "additionalProperties": False}},
    },
    "required": ["name", "street", "city", "carrier", "tracking_number", "items"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def servers(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    # Each with its own prompt cache folders: the two must not share anything but the model.
    on = make_settings(models_dir, lookup_draft_max=8,
                       data_dir=tmp_path_factory.mktemp("spec-on"),
                       cache_dir=tmp_path_factory.mktemp("spec-on-cache"))
    off = make_settings(models_dir, lookup_draft_max=0,
                        data_dir=tmp_path_factory.mktemp("spec-off"),
                        cache_dir=tmp_path_factory.mktemp("spec-off-cache"))
    with running_server(on) as url_on, running_server(off) as url_off:
        yield {"on": url_on, "off": url_off}


def both(servers: dict, path: str, body: dict) -> tuple[dict, dict]:
    replies = []
    for url in (servers["on"], servers["off"]):
        r = requests.post(f"{url}{path}", json=body, timeout=600)
        assert r.status_code == 200, r.text
        replies.append(r.json())
    return replies[0], replies[1]


def accepted(url: str) -> float:
    return metric(url, "slm_draft_tokens_total", model=MODEL, outcome="accepted")


def test_greedy_copy_is_identical_and_uses_drafts(servers: dict) -> None:
    before = accepted(servers["on"])
    on, off = both(servers, "/v1/chat/completions",
                   {"messages": REPEAT, "max_tokens": 96, "temperature": 0})
    assert on["choices"][0]["message"]["content"] == off["choices"][0]["message"]["content"]
    assert on["choices"][0]["finish_reason"] == off["choices"][0]["finish_reason"]
    assert on["usage"]["completion_tokens"] == off["usage"]["completion_tokens"]
    # The copy was guessed from the prompt and the model agreed with the guesses.
    assert accepted(servers["on"]) - before >= 10
    assert accepted(servers["off"]) == 0


def test_sampled_output_is_identical_for_a_seed(servers: dict) -> None:
    body = {"messages": REPEAT, "max_tokens": 64, "temperature": 0.8, "top_p": 0.95,
            "seed": 11}
    on, off = both(servers, "/v1/chat/completions", body)
    assert on["choices"][0]["message"]["content"] == off["choices"][0]["message"]["content"]


def test_extraction_is_identical(servers: dict) -> None:
    body = {"text": DOCUMENT, "schema": SCHEMA, "max_tokens": 160, "temperature": 0}
    on, off = both(servers, "/v1/extract", body)
    assert on["data"] == off["data"]
    assert on["usage"]["completion_tokens"] == off["usage"]["completion_tokens"]
    assert on["usage"]["completion_tokens"] <= 160


@pytest.mark.parametrize("max_tokens", [1, 5, 17])
def test_guesses_never_pass_max_tokens(servers: dict, max_tokens: int) -> None:
    on, off = both(servers, "/v1/chat/completions",
                   {"messages": REPEAT, "max_tokens": max_tokens, "temperature": 0,
                    "logprobs": True, "top_logprobs": 2})
    assert on["usage"]["completion_tokens"] == max_tokens
    assert on["choices"][0]["finish_reason"] == "length"
    assert on["choices"][0]["message"]["content"] == off["choices"][0]["message"]["content"]
    # A confirmed guess's logprobs come from its own row, as plain decoding's do.
    got = on["choices"][0]["logprobs"]["content"]
    want = off["choices"][0]["logprobs"]["content"]
    assert [t["token"] for t in got] == [t["token"] for t in want]
    assert [t["logprob"] for t in got] == pytest.approx([t["logprob"] for t in want],
                                                        abs=1e-3)


def test_stop_inside_a_guessed_run(servers: dict) -> None:
    on, off = both(servers, "/v1/chat/completions",
                   {"messages": REPEAT, "max_tokens": 96, "temperature": 0,
                    "stop": ["Basel"]})
    text = on["choices"][0]["message"]["content"]
    assert text == off["choices"][0]["message"]["content"]
    assert "Basel" not in text and on["choices"][0]["finish_reason"] == "stop"


def test_streamed_choices_are_identical(servers: dict) -> None:
    # Two sequences guessing side by side in one batch.
    def streamed(url: str) -> list[str]:
        texts = ["", ""]
        with requests.post(f"{url}/v1/chat/completions", stream=True, timeout=600, json={
                "messages": REPEAT, "max_tokens": 48, "temperature": 0, "n": 2,
                "stream": True}) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith(b"data: {"):
                    for choice in json.loads(line[6:])["choices"]:
                        texts[choice["index"]] += choice["delta"].get("content") or ""
        return texts

    assert streamed(servers["on"]) == streamed(servers["off"])
