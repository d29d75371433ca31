"""What Ollama users set beyond the basics: logprobs / top_logprobs, and llama.cpp's other
samplers (Mirostat, DRY, XTC, typical, top-n-sigma, the penalty window), through the official
`ollama` SDK, LangChain's ChatOllama and the openai SDK against a real server. Each sampler is
shown to reach llama.cpp by changing a seeded (or greedy) reply; an option with no knob here is
a 400 that names it."""

from __future__ import annotations

from pathlib import Path

import ollama
import openai
import pytest
from support.http_server import MODEL, make_settings, running_server

SEEDED = {"temperature": 0.8, "seed": 3, "num_predict": 8}
POEM = [{"role": "user", "content": "Write a short poem about the sea."}]
# A raw prompt the greedy model continues by repeating it: what DRY and the penalties break.
LOOP = "a b c d a b c d a b c d a b c d a b c d"


@pytest.fixture(scope="module")
def url(models_dir: Path):
    with running_server(make_settings(models_dir, n_parallel=2)) as base:
        yield base


@pytest.fixture(scope="module")
def client(url: str) -> ollama.Client:
    return ollama.Client(host=url, timeout=300)


@pytest.fixture(scope="module")
def seeded_reply(client: ollama.Client) -> str:
    return client.chat(model=MODEL, messages=POEM, options=SEEDED).message.content


def loop_reply(client: ollama.Client, **options: object) -> str:
    return client.generate(model=MODEL, prompt=LOOP, raw=True,
                           options={"temperature": 0, "num_predict": 8, **options}).response


# -- logprobs ----------------------------------------------------------------------------------


def test_chat_logprobs_name_each_token_with_its_top_alternatives(client):
    reply = client.chat(model=MODEL, messages=POEM, logprobs=True, top_logprobs=3,
                        options={"temperature": 0, "num_predict": 6})
    entries = reply.logprobs
    assert entries is not None and len(entries) == reply.eval_count == 6
    assert "".join(e.token for e in entries) == reply.message.content
    for entry in entries:
        assert entry.logprob <= 0.0
        assert len(entry.top_logprobs) == 3
        # Greedy: the chosen token is the most likely one.
        assert entry.top_logprobs[0].token == entry.token
        assert entry.top_logprobs[0].logprob == pytest.approx(entry.logprob)
        assert entry.top_logprobs[1].logprob <= entry.logprob


def test_streamed_generate_carries_each_tokens_logprob_once(client):
    parts = list(client.generate(model=MODEL, prompt="Say hello.", logprobs=True, stream=True,
                                 options={"temperature": 0, "num_predict": 6}))
    entries = [e for p in parts for e in (p.logprobs or [])]
    assert len(entries) == parts[-1].eval_count == 6
    assert "".join(e.token for e in entries) == "".join(p.response for p in parts)
    assert all(not e.top_logprobs for e in entries)  # top_logprobs unset: the token alone


def test_no_logprobs_unless_asked(client):
    reply = client.chat(model=MODEL, messages=POEM, options={"num_predict": 2})
    assert reply.logprobs is None


def test_langchain_chat_ollama_gets_the_logprobs(url):
    from langchain_ollama import ChatOllama

    llm = ChatOllama(model=MODEL, base_url=url, logprobs=True, top_logprobs=2,
                     temperature=0, num_predict=5)
    message = llm.invoke("Name a colour.")
    entries = message.response_metadata["logprobs"]
    assert len(entries) == 5
    assert "".join(e["token"] for e in entries) == message.content
    assert all(len(e["top_logprobs"]) == 2 for e in entries)


@pytest.mark.parametrize(("body", "needle"), [
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    ({"top_logprobs": 2}, "top_logprobs needs logprobs"),
])
def test_bad_logprobs_requests_are_a_400(client, body, needle):
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model=MODEL, messages=POEM, **body)
    assert err.value.status_code == 400 and needle in err.value.error


# -- samplers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sampler", [
    {"mirostat": 1}, {"mirostat": 2, "mirostat_tau": 3.0}, {"typical_p": 0.2},
    {"xtc_probability": 1.0, "xtc_threshold": 0.01}, {"top_n_sigma": 0.5},
], ids=["mirostat", "mirostat2", "typical_p", "xtc", "top_n_sigma"])
def test_each_sampler_changes_a_seeded_reply(client, seeded_reply, sampler):
    again = client.chat(model=MODEL, messages=POEM, options=SEEDED).message.content
    assert again == seeded_reply  # the seed alone fixes the reply...
    changed = client.chat(model=MODEL, messages=POEM, options={**SEEDED, **sampler})
    assert changed.message.content != seeded_reply  # ...so the sampler made the difference


def test_dry_breaks_a_greedy_repetition(client):
    plain = loop_reply(client)
    assert plain.split()[:4] == ["a", "b", "c", "d"]
    dry = loop_reply(client, dry_multiplier=2.0, dry_allowed_length=1,
                     dry_sequence_breakers=["\n"])
    assert dry != plain


def test_repeat_last_n_sets_the_penalty_window(client):
    plain = loop_reply(client)
    assert loop_reply(client, repeat_penalty=1.8) != plain
    assert loop_reply(client, repeat_penalty=1.8, repeat_last_n=0) == plain  # 0: no window


@pytest.mark.parametrize(("options", "name"), [
    ({"tfs_z": 0.5}, "tfs_z"),
    ({"penalize_newline": False}, "penalize_newline"),
    ({"use_mlock": True}, "use_mlock"),
    ({"main_gpu": 1}, "main_gpu"),
    ({"f16_kv": False}, "f16_kv"),
    ({"mirostat": 3}, "mirostat"),
    ({"xtc_threshold": 0.9}, "xtc_threshold"),  # llama.cpp's XTC does nothing above 0.5
    ({"dry_base": 0.5}, "dry_base"),  # and DRY nothing below 1
    ({"dry_sequence_breakers": ["x" * 41]}, "dry_sequence_breakers"),
    ({"dry_sequence_breakers": ["x"] * 17}, "dry_sequence_breakers"),
    ({"repeat_last_n": 10**9}, "repeat_last_n"),
])
def test_an_option_without_a_knob_or_out_of_range_is_a_400_naming_it(client, options, name):
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model=MODEL, messages=POEM, options={"num_predict": 1, **options})
    assert err.value.status_code == 400
    assert f"options.{name}" in err.value.error


def test_options_asking_for_what_the_server_does_are_accepted(client):
    reply = client.chat(model=MODEL, messages=POEM, options={
        "num_predict": 1, "tfs_z": 1.0, "penalize_newline": True, "use_mmap": True,
        "use_mlock": False, "numa": False, "num_keep": 4})
    assert reply.done


# -- the same samplers on the OpenAI-shaped route ---------------------------------------------


def test_openai_route_takes_the_samplers_as_extra_fields(url):
    oai = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=300)

    def reply(**extra: object) -> str | None:
        out = oai.chat.completions.create(model=MODEL, messages=POEM, max_tokens=8, seed=3,
                                          temperature=0.8, extra_body=extra or None)
        return out.choices[0].message.content

    assert reply(mirostat=2) != reply()
    with pytest.raises(openai.BadRequestError) as err:
        reply(xtc_threshold=0.9)
    assert err.value.body["param"] == "xtc_threshold"
