"""`n` > 1: several choices of one request, generated side by side from one evaluated prompt."""

from __future__ import annotations

import openai
import pytest
import requests
from support.http_server import MODEL

ASK = [{"role": "user", "content": "Name a colour."}]
END_MARKERS = ("<end_of_turn>", "<eos>", "<|im_end|>", "<|endoftext|>", "</s>", "<|eot_id|>")


@pytest.fixture(scope="module")
def no_end(server: str) -> dict[str, int]:
    """logit_bias banning the model's end-of-text and end-of-turn tokens: every choice then
    runs to max_tokens, so token counts are exact."""
    bias = {}
    for marker in END_MARKERS:
        r = requests.post(f"{server}/extras/tokenize", json={"input": marker,
                                                             "add_special": False}, timeout=30)
        tokens = r.json()["tokens"]
        if len(tokens) == 1:
            bias[str(tokens[0])] = -100
    assert bias
    return bias


def test_chat_choices_are_counted_and_differ(client, no_end):
    one = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=4,
                                         logit_bias=no_end, seed=7, temperature=1.5)
    three = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=4, n=3,
                                           logit_bias=no_end, seed=7, temperature=1.5)
    assert [c.index for c in three.choices] == [0, 1, 2]
    assert all(c.finish_reason == "length" for c in three.choices)
    assert len({c.message.content for c in three.choices}) > 1  # seeds 7, 8, 9
    assert three.usage.prompt_tokens == one.usage.prompt_tokens
    assert three.usage.completion_tokens == 3 * 4 == 3 * one.usage.completion_tokens


def test_seeded_choices_repeat_request_to_request(client, no_end):
    """Every choice of a seeded request repeats, whether the prompt was read afresh or came
    from the cache: each choice decodes in its own KV stream, whatever its neighbours do."""
    poem = [{"role": "user", "content": "Write a poem about the sea."}]
    runs = [[c.message.content for c in client.chat.completions.create(
        model=MODEL, messages=poem, max_tokens=24, n=3, logit_bias=no_end, seed=42,
        temperature=0.9).choices] for _ in range(3)]
    assert len(set(runs[0])) == 3
    assert runs[1] == runs[0] and runs[2] == runs[0]


def test_streamed_choices_interleave_by_index(client, no_end):
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=ASK, max_tokens=6, n=2, logit_bias=no_end, temperature=1.0,
        stream=True, stream_options={"include_usage": True}))
    indexes = [c.choices[0].index for c in chunks if c.choices and c.choices[0].delta.content]
    assert set(indexes) == {0, 1}
    assert indexes != sorted(indexes)  # both advance together, not one after the other
    for index in (0, 1):
        ends = [c.choices[0].finish_reason for c in chunks
                if c.choices and c.choices[0].index == index and c.choices[0].finish_reason]
        assert ends == ["length"]
    assert chunks[-1].usage.completion_tokens == 12


def test_completions_number_choices_per_prompt(client, no_end):
    r = client.completions.create(model=MODEL, prompt=["Red, green,", "One, two,"], n=2,
                                  max_tokens=3, logit_bias=no_end)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    assert r.usage.completion_tokens == 12


def test_n_above_the_cap_is_refused(client):
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=MODEL, messages=ASK, n=9, max_tokens=1)
    assert refused.value.body["param"] == "n"
