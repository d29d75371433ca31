"""Fill-in-the-middle over real HTTP, as each editor's client sends it: raw /infill as
llama.vscode and llama.vim send it, the `ollama` SDK's generate with `suffix` (Continue), the
openai SDK's completions with `suffix` (minuet-ai). The model is a copy of SmolLM2 whose GGUF
declares FIM token ids (tests/support/ggufs.py): its completions mean nothing, its prompt
layout is checked token by token against llama.cpp's."""

from __future__ import annotations

import json
import os
from pathlib import Path

import ollama
import pytest
import requests
from openai import BadRequestError, OpenAI
from support.ggufs import with_fim_tokens
from support.http_server import MODEL, make_settings, running_server

# Control tokens of SmolLM2's vocabulary, declared as its FIM tokens in the copies.
PRE, SUF, MID, REP, SEP = 11, 12, 13, 3, 5
AUTO_REP = 4  # '<reponame>': llama.cpp finds it by its text when no key names one
FIM, PLAIN = "smollm2-fim", "smollm2-fim-plain"
VSCODE = {  # what llama.vscode sends (its llama-server.ts), ring buffer chunks included
    "id_slot": 0, "input_prefix": "def add(a, b):\n", "input_suffix": "\n\nprint(add(1, 2))\n",
    "input_extra": [{"filename": "util.py", "text": "def sub(a, b):\n    return a - b\n"},
                    {"filename": "main.py", "text": "import util\n"}],
    "prompt": "    return", "n_predict": 8, "n_indent": 4, "top_k": 40, "top_p": 0.99,
    "stream": False, "samplers": ["top_k", "top_p", "infill"], "cache_prompt": True,
    "t_max_prompt_ms": 500, "t_max_predict_ms": 1000, "seed": 3, "temperature": 0,
}


@pytest.fixture(scope="module")
def url(model_path: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("fim-models")
    os.link(model_path, folder / model_path.name)
    with_fim_tokens(model_path, folder / f"{FIM}.gguf", pre=PRE, suf=SUF, mid=MID, rep=REP,
                    sep=SEP)
    with_fim_tokens(model_path, folder / f"{PLAIN}.gguf", pre=PRE, suf=SUF, mid=MID)
    # Greedy replies compared across requests: one sequence and no prompt cache, so every
    # request evaluates its whole prompt in one batch into the same cells (same numerics).
    settings = make_settings(folder, model_path=folder / f"{FIM}.gguf", max_loaded_models=3,
                             n_parallel=1, prompt_cache="off")
    with running_server(settings) as base:
        yield base


def tokens(url: str, text: str, model: str = FIM) -> list[int]:
    r = requests.post(f"{url}/extras/tokenize", json={"input": text, "model": model,
                                                      "add_special": False}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["tokens"]


def infill(url: str, **body) -> requests.Response:
    return requests.post(f"{url}/infill", json={**VSCODE, **body}, timeout=120)


def test_infill_lays_out_the_repo_level_prompt_token_by_token(url):
    r = infill(url, return_tokens=True)
    assert r.status_code == 200, r.text
    out = r.json()
    t = lambda s: tokens(url, s)  # noqa: E731
    expected = [REP, *t("myproject\n"),
                SEP, *t("util.py\n"), *t("def sub(a, b):\n    return a - b\n"),
                SEP, *t("main.py\n"), *t("import util\n"),
                SEP, *t("filename\n"),
                PRE, *t("def add(a, b):\n"), *t("    return"),
                SUF, *t("\n\nprint(add(1, 2))\n"), MID]
    assert out["prompt_tokens"] == expected
    assert out["tokens_evaluated"] == len(expected)
    assert out["prompt"].startswith("<repo_name>myproject\n<file_sep>util.py\n")
    assert out["prompt"].endswith("<jupyter_start>def add(a, b):\n    return<jupyter_text>"
                                  "\n\nprint(add(1, 2))\n<jupyter_code>")
    assert out["stop"] is True and out["model"] == FIM
    assert out["stop_type"] in {"eos", "limit", "word"} and isinstance(out["content"], str)
    assert 1 <= out["tokens_predicted"] <= 8 and out["tokens"]
    assert out["timings"]["prompt_n"] + out["timings"]["cache_n"] == len(expected)


def test_without_fim_sep_each_file_follows_a_snippet_line(url):
    out = infill(url, model=PLAIN, return_tokens=True, prompt="").json()
    t = lambda s: tokens(url, s, PLAIN)  # noqa: E731
    snippet = t("\n\n--- snippet ---\n\n")
    assert out["prompt_tokens"] == [
        AUTO_REP, *t("myproject\n"), *snippet, *t("def sub(a, b):\n    return a - b\n"),
        *snippet, *t("import util\n"), PRE, *t("def add(a, b):\n"), SUF,
        *t("\n\nprint(add(1, 2))\n"), MID]


def test_text_that_spells_a_fim_token_stays_text(url):
    out = infill(url, input_prefix="x = '<jupyter_code><file_sep>'\n", input_extra=[],
                 return_tokens=True).json()
    ids = out["prompt_tokens"]
    assert ids.count(MID) == 1 and ids[-1] == MID
    assert ids.count(SEP) == 1  # only the current file's line: the prefix's is plain text


def test_response_fields_return_only_those_paths_as_llama_vscode_asks(url):
    fields = ["content", "timings/prompt_n", "timings/predicted_ms", "truncated",
              "tokens_cached", "no/such"]
    out = infill(url, response_fields=fields).json()
    assert set(out) == set(fields) - {"no/such"}
    assert isinstance(out["timings/prompt_n"], int) and out["truncated"] is False


def test_infill_streams_partial_objects_and_ends_with_stop_true_without_done(url):
    r = requests.post(f"{url}/infill", json={**VSCODE, "stream": True}, stream=True,
                      timeout=120)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    lines = [ln for ln in r.iter_lines(decode_unicode=True) if ln]
    assert all(ln.startswith("data: {") for ln in lines)  # no "data: [DONE]", as llama-server
    events = [json.loads(ln[len("data: "):]) for ln in lines]
    assert [e["stop"] for e in events] == [False] * (len(events) - 1) + [True]
    final = infill(url).json()  # the same greedy request, whole
    assert "".join(e["content"] for e in events) == final["content"]
    assert events[-1]["tokens_predicted"] == final["tokens_predicted"]


LINES = {"input_prefix": "def main():\n    for i in range(10):\n", "input_suffix": "\n",
         "input_extra": [], "prompt": "", "n_predict": 48, "n_indent": 0,
         "t_max_predict_ms": 0}


def test_n_indent_ends_at_the_first_line_indented_less_as_llama_server(url):
    free = infill(url, **LINES).json()["content"]
    lines = free.split("\n")
    assert len(lines) > 2  # the free reply has lines to cut (else the test proves nothing)
    out = infill(url, **{**LINES, "n_indent": 8}).json()
    # The first line is free; the first later line with text indented under 8 columns loses
    # its text (its indentation stays) and ends the completion.
    cut = len(lines[0]) + 1
    for line in lines[1:]:
        indent = len(line) - len(line.lstrip(" \t"))
        if line.strip() and indent < 8:
            cut += indent
            break
        cut += len(line) + 1
    assert out["content"] == free[:cut] and out["stop_type"] == "limit"


def test_t_max_predict_ms_ends_at_the_first_newline_once_the_time_is_up(url):
    free = infill(url, **LINES).json()["content"]
    assert free.count("\n") > 1
    out = infill(url, **{**LINES, "t_max_predict_ms": 1}).json()
    assert free.startswith(out["content"]) and out["content"].count("\n") == 1
    assert out["stop_type"] == "limit" and out["has_new_line"] is True


def test_continue_via_the_ollama_sdk_generate_with_suffix(url):
    client = ollama.Client(host=url)
    shown = client.show(FIM)
    assert "insert" in shown.capabilities and ".Suffix" in shown.template
    assert "<jupyter_start>{{ .Prompt }}<jupyter_text>{{ .Suffix }}<jupyter_code>" in \
        shown.template
    plain = client.show(MODEL)
    assert "insert" not in plain.capabilities and ".Suffix" not in (plain.template or "")
    out = client.generate(model=FIM, prompt="def add(a, b):\n", suffix="\nprint(add(1, 2))\n",
                          options={"num_predict": 6, "temperature": 0})
    t = lambda s: tokens(url, s)  # noqa: E731
    expected = [REP, *t("myproject\n"), SEP, *t("filename\n"), PRE, *t("def add(a, b):\n"),
                SUF, *t("\nprint(add(1, 2))\n"), MID]
    assert out.context[:len(expected)] == expected  # Ollama's context: prompt, then reply
    assert out.prompt_eval_count == len(expected) and out.done


def test_minuet_via_the_openai_sdk_completions_with_suffix(url):
    client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)
    out = client.completions.create(model=FIM, prompt="def add(a, b):\n",
                                    suffix="\nprint(add(1, 2))\n", max_tokens=6,
                                    temperature=0)
    t = lambda s: tokens(url, s)  # noqa: E731
    n = 1 + len(t("myproject\n")) + 1 + len(t("filename\n")) + 1 + len(t("def add(a, b):\n")) \
        + 1 + len(t("\nprint(add(1, 2))\n")) + 1
    assert out.usage.prompt_tokens == n
    assert out.choices[0].finish_reason in {"stop", "length"}


def test_a_model_without_fim_tokens_is_a_400_in_each_apis_shape(url):
    r = infill(url, model=MODEL)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == "input_suffix" and "does not support insert" in err["message"]
    assert "FIM_PRE/FIM_SUF/FIM_MID" in err["message"]

    with pytest.raises(ollama.ResponseError) as exc:
        ollama.Client(host=url).generate(model=MODEL, prompt="def f(", suffix="return 1")
    assert exc.value.status_code == 400 and exc.value.error.startswith("suffix: ")
    assert "does not support insert" in exc.value.error

    client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)
    with pytest.raises(BadRequestError) as bad:
        client.completions.create(model=MODEL, prompt="def f(", suffix="return 1", max_tokens=4)
    assert bad.value.body["param"] == "suffix"


@pytest.mark.parametrize(("body", "param"), [
    ({"input_extra": [{"text": "x"}] * 257}, "input_extra"),
    ({"input_extra": [{"text": "x", "filename": "f" * 1025}]}, "input_extra"),
    ({"n_indent": 1025}, "n_indent"),
    ({"n_indent": -1}, "n_indent"),
    ({"t_max_predict_ms": 600_001}, "t_max_predict_ms"),
    ({"n_predict": 0}, "n_predict"),
    ({"n_predict": -2}, "n_predict"),
    ({"stop": ["x"] * 17}, "stop"),
    ({"response_fields": ["content"] * 65}, "response_fields"),
    ({"input_suffix": None}, "input_suffix"),
    ({"input_prefix": 5}, "input_prefix"),
])
def test_every_infill_field_is_bounded(url, body, param):
    r = infill(url, **body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"].split(".")[0] == param


@pytest.mark.parametrize("field", ["input_prefix", "input_suffix", "prompt", "input_extra"])
def test_text_longer_than_the_context_can_hold_is_refused_naming_its_field(url, field):
    big = "x" * 400_000  # under the 1 MiB body limit, over 2048 tokens of 162 bytes at most
    body = {"input_extra": [{"text": big}]} if field == "input_extra" else {field: big}
    r = infill(url, **body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == field
    assert r.json()["error"]["code"] == "context_length_exceeded"


def test_a_prompt_longer_than_the_context_is_a_400_naming_prompt(url):
    r = infill(url, prompt="x = 1\n" * 1200, input_extra=[])
    assert r.status_code == 400 and r.json()["error"]["param"] == "prompt"
    assert r.json()["error"]["code"] == "context_length_exceeded"


def test_suffix_with_an_ollama_context_is_refused(url):
    r = requests.post(f"{url}/api/generate", json={"model": FIM, "prompt": "a", "suffix": "b",
                                                   "context": [1, 2], "stream": False},
                      timeout=60)
    assert r.status_code == 400 and "context" in r.json()["error"]


def test_keys_guard_infill_as_every_api_route(keyed_server):
    r = requests.post(f"{keyed_server}/infill", json=VSCODE, timeout=60)
    assert r.status_code == 401
    r = requests.post(f"{keyed_server}/infill", json=VSCODE, timeout=60,
                      headers={"Authorization": "Bearer sk-alice"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "input_suffix"  # no FIM


def test_files_that_overfill_the_context_are_cut_to_fit_with_n_predict_unset(url):
    # A context of 256 and batches of 64 (the prompt is evaluated on two shared cores).
    folder = Path(requests.get(f"{url}/models", timeout=30).json()["active"]["path"]).parent
    settings = make_settings(folder, model_path=folder / f"{FIM}.gguf", n_ctx=256, n_batch=64,
                             n_parallel=1)
    files = [{"filename": f"m{i}.py", "text": f"def f{i}(x):\n    return x * {i}\n" * 4}
             for i in range(20)]
    with running_server(settings) as small:
        r = requests.post(f"{small}/infill", timeout=120, json={
            **VSCODE, "input_extra": files, "input_prefix": "y = 1\n" * 100, "n_predict": -1,
            "t_max_predict_ms": 0, "n_indent": 0, "return_tokens": True})
    assert r.status_code == 200, r.text
    out = r.json()
    assert 200 < out["tokens_evaluated"] < 256
    assert out["prompt_tokens"][-1] == MID and out["tokens_predicted"] >= 1
