"""Ollama's API (/api/...), driven by the official `ollama` Python SDK as its users drive it."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import jsonschema
import ollama
import pydantic
import pytest
from conftest import embedded_model
from support.http_server import MODEL, make_settings, running_server
from support.media import png_bytes

from slm_api.config import MINILM_MODEL_FILE

MINILM = Path(MINILM_MODEL_FILE).stem
T0 = {"temperature": 0, "seed": 7}
ASK = [{"role": "user", "content": "What is the capital of France?"}]
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}


@pytest.fixture(scope="module")
def ollama_url(model_path: Path, gemma_path: Path, tmp_path_factory: pytest.TempPathFactory):
    """A server over the default model, Gemma 3 270M and MiniLM, with one alias."""
    folder = tmp_path_factory.mktemp("ollama-models")
    for path in (model_path, gemma_path, embedded_model(MINILM_MODEL_FILE)):
        os.link(path, folder / path.name)
    settings = make_settings(folder, model_path=folder / model_path.name,
                             ollama_aliases=(f"tiny:1b={MODEL}",))
    with running_server(settings) as url:
        yield url


@pytest.fixture(scope="module")
def client(ollama_url: str) -> ollama.Client:
    return ollama.Client(host=ollama_url, timeout=120)


def test_list_names_each_file_with_its_gguf_details(client):
    listed = {m.model: m for m in client.list().models}
    assert set(listed) == {f"{MODEL}:latest", f"{MINILM}:latest", "gemma-3-270m-q4_k_m:latest",
                           "tiny:1b"}
    smol = listed[f"{MODEL}:latest"]
    assert smol.size > 50_000_000 and len(smol.digest) == 64
    assert smol.details.format == "gguf" and smol.details.family == "llama"
    assert smol.details.parameter_size == "134.52M" and smol.details.quantization_level == "Q4_1"
    assert listed["gemma-3-270m-q4_k_m:latest"].details.family == "gemma3"
    assert listed["gemma-3-270m-q4_k_m:latest"].details.quantization_level == "Q4_K_M"
    assert listed["tiny:1b"].digest == smol.digest


def test_show_reads_the_gguf_metadata(client, ollama_url):
    import requests

    shown = client.show(MODEL)
    assert shown.modelinfo["general.architecture"] == "llama"
    assert shown.modelinfo["llama.context_length"] == 8192
    assert shown.modelinfo["tokenizer.ggml.tokens"] is None  # long arrays only with verbose
    assert "<|im_start|>" in shown.template
    assert shown.capabilities == ["completion", "tools"]
    assert shown.details.family == "llama"
    # The SDK has no verbose argument; Ollama's CLI (`ollama show -v`) sends it.
    verbose = requests.post(f"{ollama_url}/api/show", json={"model": MODEL, "verbose": True},
                            timeout=60).json()["model_info"]
    assert len(verbose["tokenizer.ggml.tokens"]) == 49152 and "<|im_start|>" in \
        verbose["tokenizer.ggml.tokens"]
    assert client.show(f"{MINILM}:latest").capabilities == ["embedding"]
    with pytest.raises(ollama.ResponseError) as err:
        client.show("no-such-model")
    assert err.value.status_code == 404 and err.value.error == "model 'no-such-model' not found"


def test_chat_whole_and_streamed_agree(client):
    whole = client.chat(model=MODEL, messages=ASK, options={**T0, "num_predict": 12})
    assert whole.done and whole.done_reason in ("stop", "length")
    assert whole.message.role == "assistant" and whole.message.content.strip()
    assert whole.prompt_eval_count > 10 and 0 < whole.eval_count <= 12
    assert whole.total_duration >= whole.eval_duration > 0
    parts = list(client.chat(model=MODEL, messages=ASK, options={**T0, "num_predict": 12},
                             stream=True))
    assert all(not p.done for p in parts[:-1]) and parts[-1].done
    assert "".join(p.message.content for p in parts) == whole.message.content
    assert parts[-1].eval_count == whole.eval_count
    assert parts[-1].done_reason == whole.done_reason


def test_num_predict_and_stop_end_the_reply(client):
    cut = client.chat(model=MODEL, messages=ASK, options={**T0, "num_predict": 3})
    assert cut.done_reason == "length" and cut.eval_count == 3
    text = client.chat(model=MODEL, messages=ASK, options={**T0, "num_predict": 20})
    word = text.message.content.split()[1]
    stopped = client.chat(model=MODEL, messages=ASK, options={**T0, "num_predict": 20,
                                                               "stop": [word]})
    assert stopped.done_reason == "stop" and word not in stopped.message.content


def test_chat_matches_openai_chat_token_for_token(client, ollama_url):
    import requests

    ours = client.chat(model=MODEL, messages=ASK, options={**T0, "num_predict": 16})
    theirs = requests.post(f"{ollama_url}/v1/chat/completions", timeout=120, json={
        "model": MODEL, "messages": ASK, "max_tokens": 16, **T0}).json()
    assert ours.message.content == theirs["choices"][0]["message"]["content"]
    assert ours.eval_count == theirs["usage"]["completion_tokens"]


class City(pydantic.BaseModel):
    name: str = pydantic.Field(max_length=20)
    country: str = pydantic.Field(max_length=20)


def test_format_schema_gives_json_that_fits(client):
    schema = City.model_json_schema()
    reply = client.chat(model=MODEL, messages=[{"role": "user", "content": "Name a city."}],
                        format=schema, options={**T0, "num_predict": 60})
    assert reply.done_reason == "stop"
    jsonschema.validate(json.loads(reply.message.content), schema)
    City.model_validate_json(reply.message.content)
    as_json = client.generate(model=MODEL, prompt="A JSON object about a dog.", format="json",
                              options={**T0, "num_predict": 60})
    assert isinstance(json.loads(as_json.response), dict)


def test_tool_calls_come_back_with_object_arguments(client, ollama_url):
    import requests

    # Ollama has no tool_choice and a 135M model rarely calls a tool unasked: slm-api's
    # tool_choice extension forces one; the SDK's own ChatResponse then parses the reply.
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Weather in Paris?"}],
            "tools": [WEATHER], "tool_choice": "required", "stream": False,
            "options": {**T0, "num_predict": 60}}
    raw = requests.post(f"{ollama_url}/api/chat", json=body, timeout=120).json()
    reply = ollama.ChatResponse.model_validate(raw)
    calls = reply.message.tool_calls
    assert reply.done_reason == "stop" and len(calls) == 1
    assert calls[0].function.name == "get_weather"
    assert isinstance(raw["message"]["tool_calls"][0]["function"]["arguments"], dict)
    jsonschema.validate(dict(calls[0].function.arguments), WEATHER["function"]["parameters"])

    lines = requests.post(f"{ollama_url}/api/chat", json={**body, "stream": True},
                          timeout=120).text.splitlines()
    parts = [ollama.ChatResponse.model_validate_json(line) for line in lines]
    streamed = [c for p in parts for c in p.message.tool_calls or []]
    assert [(c.function.name, dict(c.function.arguments)) for c in streamed] == \
        [(c.function.name, dict(c.function.arguments)) for c in calls]
    assert not any(p.message.content and "<tool_call>" in p.message.content for p in parts)

    # The call and its result go back through the SDK, arguments as an object.
    follow = client.chat(model=MODEL, tools=[WEATHER], options={**T0, "num_predict": 20},
                         messages=[*body["messages"], reply.message,
                                   {"role": "tool", "tool_name": "get_weather",
                                    "content": "22 C, sunny"}])
    assert follow.done and follow.prompt_eval_count > reply.prompt_eval_count


def test_generate_templates_the_prompt_and_continues_a_context(client):
    first = client.generate(model=MODEL, prompt="Say hello.", options={**T0, "num_predict": 8})
    assert first.done and first.response.strip() and first.eval_count <= 8
    assert first.context and len(first.context) == first.prompt_eval_count + first.eval_count
    raw = client.generate(model=MODEL, prompt="The capital of France is", raw=True,
                          options={**T0, "num_predict": 4})
    assert raw.prompt_eval_count < first.prompt_eval_count  # no template around it
    more = client.generate(model=MODEL, prompt="Again.", context=first.context,
                           options={**T0, "num_predict": 4})
    assert more.prompt_eval_count > len(first.context)
    parts = list(client.generate(model=MODEL, prompt="Say hello.", stream=True,
                                 options={**T0, "num_predict": 8}))
    assert "".join(p.response for p in parts) == first.response and parts[-1].done


def test_embed_and_legacy_embeddings(client):
    texts = ["The cat sat on the warm windowsill.",
             "A kitten was sleeping on the sunny window ledge.",
             "Quarterly revenue grew by twelve percent."]
    out = client.embed(model=MINILM, input=texts)
    assert len(out.embeddings) == 3 and out.prompt_eval_count > 10

    def cos(a, b):
        return sum(x * y for x, y in zip(a, b, strict=True))
    a, b, c = out.embeddings
    assert math.isclose(cos(a, a), 1.0, rel_tol=1e-3) and cos(a, b) > cos(a, c)
    short = client.embed(model=MINILM, input="hello", dimensions=64)
    assert len(short.embeddings[0]) == 64
    legacy = client.embeddings(model=MINILM, prompt=texts[0])
    assert max(abs(x - y) for x, y in zip(legacy.embedding, a, strict=True)) < 1e-5


def test_alias_and_ps(client):
    reply = client.chat(model="tiny:1b", messages=ASK, options={**T0, "num_predict": 2})
    assert reply.model == "tiny:1b" and reply.eval_count == 2
    running = {m.model: m for m in client.ps().models}
    assert running[f"{MODEL}:latest"].context_length == 2048
    assert running[f"{MODEL}:latest"].size > 50_000_000


def test_keep_alive_zero_unloads_and_ps_shows_it(client):
    client.generate(model="gemma-3-270m-q4_k_m", prompt="Hi",
                    keep_alive="10m", options={"num_predict": 1})
    running = {m.model: m for m in client.ps().models}
    assert "gemma-3-270m-q4_k_m:latest" in running
    assert running["gemma-3-270m-q4_k_m:latest"].expires_at.year < 2100
    unloaded = client.generate(model="gemma-3-270m-q4_k_m", keep_alive=0)
    assert unloaded.done_reason == "unload"
    assert "gemma-3-270m-q4_k_m:latest" not in {m.model for m in client.ps().models}
    loaded = client.chat(model="gemma-3-270m-q4_k_m", messages=[], keep_alive="1m")
    assert loaded.done_reason == "load"
    assert "gemma-3-270m-q4_k_m:latest" in {m.model for m in client.ps().models}


def test_what_the_models_cannot_do_is_refused(client):
    for kwargs, words in [
        ({"messages": [{"role": "user", "content": "What is this?", "images": [png_bytes()]}]},
         "does not take image input"),
        ({"messages": ASK, "think": True}, "does not support thinking"),
    ]:
        with pytest.raises(ollama.ResponseError) as err:
            client.chat(model=MODEL, **kwargs)
        assert err.value.status_code == 400 and words in err.value.error
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model="missing:7b", messages=ASK)
    assert err.value.status_code == 404 and err.value.error == "model 'missing:7b' not found"
    with pytest.raises(ollama.ResponseError) as err:
        client.generate(model=MODEL, prompt="def f(", suffix="return 1")
    assert err.value.status_code == 400 and "insert" in err.value.error


def test_langchain_chat_ollama(ollama_url):
    from langchain_ollama import ChatOllama, OllamaEmbeddings

    llm = ChatOllama(model=MODEL, base_url=ollama_url, temperature=0, seed=7, num_predict=12,
                     validate_model_on_init=True)
    whole = llm.invoke("What is the capital of France?")
    assert whole.content.strip() and whole.response_metadata["done_reason"] in ("stop", "length")
    assert whole.usage_metadata["output_tokens"] <= 12
    streamed = "".join(chunk.content for chunk in llm.stream("What is the capital of France?"))
    assert streamed == whole.content
    city = ChatOllama(model=MODEL, base_url=ollama_url, temperature=0, num_predict=60
                      ).with_structured_output(City).invoke("Name a city.")
    assert isinstance(city, City) and city.name
    vectors = OllamaEmbeddings(model=MINILM, base_url=ollama_url).embed_documents(["a", "b"])
    assert len(vectors) == 2 and len(vectors[0]) == 384
