"""Legacy completions: prompt string or list, echo, stop, logprobs, streaming."""

from __future__ import annotations

from support.http_server import MODEL

PROMPT = "The capital of France is"


def test_completion_basic(client):
    out = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=8, temperature=0)
    assert out.object == "text_completion" and out.id.startswith("cmpl-")
    assert out.choices[0].text
    assert out.choices[0].finish_reason in ("stop", "length")
    assert out.usage.completion_tokens <= 8 and out.usage.prompt_tokens > 3


def test_completion_list_of_prompts_and_echo(client):
    out = client.completions.create(
        model=MODEL, prompt=[PROMPT, "One, two, three,"], max_tokens=4, temperature=0, echo=True
    )
    assert [c.index for c in out.choices] == [0, 1]
    assert out.choices[0].text.startswith(PROMPT)
    assert out.choices[1].text.startswith("One, two, three,")
    solo = client.completions.create(
        model=MODEL, prompt="One, two, three,", max_tokens=4, temperature=0
    )
    assert out.choices[1].text == "One, two, three," + solo.choices[0].text


def test_completion_logprobs(client):
    out = client.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=3, temperature=0, logprobs=2
    )
    lp = out.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == 3
    assert all(v <= 0 for v in lp.token_logprobs)
    assert all(1 <= len(top) <= 2 for top in lp.top_logprobs)
    assert "".join(lp.tokens) == out.choices[0].text
    # Greedy: the chosen token is the most likely one, reported with its own logprob.
    for token, value, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs, strict=True):
        assert max(top, key=top.get) == token
        assert top[token] == value


def test_completion_stream(client):
    chunks = list(
        client.completions.create(
            model=MODEL, prompt=PROMPT, max_tokens=6, temperature=0, stream=True
        )
    )
    text = "".join(c.choices[0].text for c in chunks)
    whole = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=6, temperature=0)
    assert text == whole.choices[0].text
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_completion_token_prompt(client, server):
    import requests

    tokens = requests.post(f"{server}/extras/tokenize", json={"input": PROMPT}, timeout=30)
    out = client.completions.create(
        model=MODEL, prompt=tokens.json()["tokens"], max_tokens=4, temperature=0
    )
    text = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=4, temperature=0)
    assert out.choices[0].text == text.choices[0].text


def test_completion_stop(client):
    out = client.completions.create(
        model=MODEL, prompt="1, 2, 3, 4, 5,", max_tokens=20, temperature=0, stop=["8"]
    )
    assert "8" not in out.choices[0].text
    assert out.choices[0].finish_reason == "stop"


def test_completion_list_of_token_lists(client, server):
    import requests

    prompts = [PROMPT, "One, two, three,"]
    ids = [requests.post(f"{server}/extras/tokenize", json={"input": p}, timeout=30)
           .json()["tokens"] for p in prompts]
    out = client.completions.create(model=MODEL, prompt=ids, max_tokens=4, temperature=0)
    assert [c.index for c in out.choices] == [0, 1]
    for choice, text in zip(out.choices, prompts, strict=True):
        alone = client.completions.create(model=MODEL, prompt=text, max_tokens=4, temperature=0)
        assert choice.text == alone.choices[0].text


def test_completion_text_offset_points_at_each_token(client):
    for echo in (False, True):
        out = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=5,
                                        temperature=0, logprobs=1, echo=echo)
        choice = out.choices[0]
        lp = choice.logprobs
        assert len(lp.text_offset) == len(lp.tokens) == 5
        # Each offset is where its token starts in the returned text; echo shifts them all by
        # the prompt.
        assert lp.text_offset[0] == (len(PROMPT) if echo else 0)
        for offset, token in zip(lp.text_offset, lp.tokens, strict=True):
            assert choice.text[offset:offset + len(token)] == token, (offset, token)
