"""Sampling fields each do what they say, and chat logprobs report what was chosen."""

from __future__ import annotations

import math

import pytest
from support.http_server import MODEL

PROMPT = "The capital of France is"
STORY = [{"role": "user", "content": "Tell me a story about a fox."}]
# A prompt the model continues by repeating itself: penalties have something to act on.
REPEAT = "Repeat after me: yes yes yes yes"


def completion(client, **kwargs):
    return client.completions.create(model=MODEL, prompt=kwargs.pop("prompt", PROMPT), **kwargs)


def chat_text(client, **kwargs) -> str:
    reply = client.chat.completions.create(model=MODEL, messages=STORY, max_tokens=12, **kwargs)
    return reply.choices[0].message.content


def token_id(server: str, text: str) -> int:
    import requests

    ids = requests.post(f"{server}/extras/tokenize",
                        json={"input": text, "add_special": False}, timeout=30).json()["tokens"]
    assert len(ids) == 1, (text, ids)
    return ids[0]


def test_logit_bias_minus_100_bans_the_greedy_token(client, server):
    greedy = completion(client, max_tokens=1, temperature=0, logprobs=2).choices[0].logprobs
    best, runner_up = sorted(greedy.top_logprobs[0].items(), key=lambda kv: -kv[1])[:2]
    assert greedy.tokens[0] == best[0]
    banned = completion(client, max_tokens=1, temperature=0, logprobs=2,
                        logit_bias={str(token_id(server, best[0])): -100})
    # With the best token banned, greedy takes the runner-up.
    assert banned.choices[0].logprobs.tokens[0] == runner_up[0]


def test_positive_logit_bias_forces_a_token(client, server):
    forced = token_id(server, " banana")
    out = completion(client, max_tokens=3, temperature=0, logprobs=1,
                     logit_bias={str(forced): 100})
    assert out.choices[0].logprobs.tokens == [" banana"] * 3


@pytest.mark.parametrize("narrowing", [{"top_k": 1}, {"min_p": 1.0}, {"top_p": 1e-6}],
                         ids=["top_k=1", "min_p=1", "top_p=tiny"])
def test_a_filter_that_keeps_one_token_equals_greedy(client, narrowing):
    # The first run reads the whole prompt in one batch, later ones reuse its cache and read
    # only the last token: logits differ by rounding between the two, and a near-tie can flip.
    # So the reference is a warm run, like the runs compared with it.
    chat_text(client, temperature=0)
    greedy = chat_text(client, temperature=0)
    for seed in (1, 2):
        hot = chat_text(client, temperature=1.5, seed=seed, extra_body=narrowing)
        assert hot == greedy
    # Without the filter the same seeds sample something else: the filter did the work.
    assert {chat_text(client, temperature=1.5, seed=s) for s in (1, 2)} != {greedy}


def repeats(client, **penalty) -> int:
    out = completion(client, prompt=REPEAT, max_tokens=12, temperature=0, logprobs=1, **penalty)
    tokens = out.choices[0].logprobs.tokens
    return max(tokens.count(t) for t in set(tokens))


@pytest.mark.parametrize("penalty", [{"frequency_penalty": 2.0}, {"presence_penalty": 2.0},
                                     {"extra_body": {"repeat_penalty": 2.0}}],
                         ids=["frequency", "presence", "repeat"])
def test_penalties_reduce_repeated_tokens(client, penalty):
    plain = repeats(client)
    assert plain == 12  # without a penalty the model says " yes" and nothing else
    assert repeats(client, **penalty) < plain


def test_chat_logprobs_shape_and_values(client):
    reply = client.chat.completions.create(
        model=MODEL, messages=STORY, max_tokens=6, temperature=0, logprobs=True, top_logprobs=3
    )
    choice = reply.choices[0]
    content = choice.logprobs.content
    assert len(content) == reply.usage.completion_tokens == 6
    assert "".join(item.token for item in content) == choice.message.content
    for item in content:
        assert item.bytes == list(item.token.encode("utf-8"))
        assert item.logprob <= 0
        tops = item.top_logprobs
        assert len(tops) == 3
        assert [t.logprob for t in tops] == sorted((t.logprob for t in tops), reverse=True)
        # Greedy: the chosen token is the most likely one, with the same logprob.
        assert (tops[0].token, tops[0].logprob) == (item.token, item.logprob)
        assert sum(math.exp(t.logprob) for t in tops) <= 1 + 1e-6
    plain = client.chat.completions.create(model=MODEL, messages=STORY, max_tokens=6,
                                           temperature=0)
    assert plain.choices[0].logprobs is None
    assert plain.choices[0].message.content == choice.message.content
