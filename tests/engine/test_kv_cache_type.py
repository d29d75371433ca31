"""KV_CACHE_TYPE (K and V, or _K / _V apart) and FLASH_ATTENTION reach llama.cpp's context:
/health reports what the context was made with, a q4_0 cache still answers, /reload takes the
same as per-load options, and what llama.cpp would refuse is a start-up error or a 400."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from support.http_server import MODEL, make_settings, running_server

from slm_api.config import Settings, SettingsError

ASK = {"messages": [{"role": "user", "content": "What is the capital of France?"}],
       "max_tokens": 8, "temperature": 0}


@pytest.fixture(scope="module")
def url(models_dir: Path):
    with running_server(make_settings(models_dir, n_parallel=2, kv_cache_type="q4_0")) as base:
        yield base


def health(url: str) -> dict:
    return requests.get(f"{url}/health", timeout=10).json()


def chat(url: str) -> str:
    r = requests.post(f"{url}/v1/chat/completions", json=ASK, timeout=300)
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["message"]["content"]


def test_a_q4_0_cache_reaches_llama_cpp_and_still_answers(url):
    body = health(url)
    # llama.cpp needs flash attention for a quantized V cache: "auto" turned it on.
    assert (body["kv_cache_type_k"], body["kv_cache_type_v"], body["flash_attention"]) == \
        ("q4_0", "q4_0", "on")
    assert "Paris" in chat(url)


def test_reload_takes_the_cache_options(url):
    r = requests.post(f"{url}/reload", timeout=300, json={
        "model_path": f"{MODEL}.gguf", "kv_cache_type_k": "q8_0", "kv_cache_type_v": "f16",
        "flash_attention": "on"})
    assert r.status_code == 200, r.text
    assert r.json()["model"]["kv_cache_type_k"] == "q8_0"
    body = health(url)
    assert (body["kv_cache_type_k"], body["kv_cache_type_v"], body["flash_attention"]) == \
        ("q8_0", "f16", "on")
    # An answer, not necessarily the f16 cache's: a q8_0 K cache turns this 135M model's
    # greedy "Paris" into "L'Étoile, la Mar".
    assert chat(url).strip()


@pytest.mark.parametrize(("options", "param", "needle"), [
    ({"kv_cache_type": "q3_k"}, "kv_cache_type", "unknown KV cache type"),
    ({"kv_cache_type_v": "q8_0", "flash_attention": "off"}, "flash_attention",
     "needs flash attention"),
    ({"flash_attention": "sometimes"}, "flash_attention", ""),
])
def test_reload_refuses_what_llama_cpp_would(url, options, param, needle):
    before = health(url)["kv_cache_type_k"]
    r = requests.post(f"{url}/reload", timeout=300,
                      json={"model_path": f"{MODEL}.gguf", **options})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == param and needle in error["message"]
    assert health(url)["kv_cache_type_k"] == before  # the old model still serves


@pytest.mark.parametrize("env", [
    {"KV_CACHE_TYPE": "q3_k"},
    {"KV_CACHE_TYPE_V": "int8"},
    {"FLASH_ATTENTION": "maybe"},
    {"KV_CACHE_TYPE": "q8_0", "FLASH_ATTENTION": "off"},
])
def test_an_invalid_cache_setting_is_a_startup_error(env):
    with pytest.raises(SettingsError, match="KV_CACHE_TYPE / FLASH_ATTENTION"):
        Settings.from_env(env, dotenv_path=None)


def test_a_quantized_k_cache_needs_no_flash_attention():
    settings = Settings.from_env({"KV_CACHE_TYPE_K": "q8_0", "FLASH_ATTENTION": "off"},
                                 dotenv_path=None)
    assert (settings.kv_cache.type_k, settings.kv_cache.type_v) == ("q8_0", "f16")


def test_a_plain_clients_load_gets_no_larger_cache_than_configured(models_dir, tmp_path,
                                                                   caplog):
    from support.http_server import model_folder

    folder = tmp_path / "models"
    folder.mkdir()
    model_folder(folder, models_dir, "spare.gguf")
    settings = make_settings(folder, n_parallel=2, kv_cache_type="q8_0", max_loaded_models=2,
                             openai_api_keys=("sk-user:user",), admin_api_keys=("sk-a:admin",))
    caplog.set_level("INFO", logger="slm_api.engine.llama_model")
    with running_server(settings) as base:
        r = requests.post(f"{base}/v1/chat/completions", timeout=300,
                          headers={"Authorization": "Bearer sk-user"},
                          json={**ASK, "max_tokens": 2, "model": "spare",
                                "load_model_configs": {"kv_cache_type": "f32",
                                                       "kv_cache_type_v": "q4_0"}})
        assert r.status_code == 200, r.text
    # f32 would double the KV memory the operator sized: q8_0 instead; q4_0 is smaller, kept.
    assert "spare: KV cache K q8_0, V q4_0, flash attention auto" in caplog.text
