"""Where the image encoder runs: on the request's own thread once the queue would take the
request, never on the decode loop, and never for a request that is then refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from support.http_server import make_settings, metric, running_server
from test_vision_chat import IMAGE_TOKENS, VLM, data_url

from slm_api.config import Settings
from slm_api.engine.llama_model import LoadedModel
from slm_api.engine.types import GenerationRequest, LoadOptions, SamplingParams
from slm_api.media.decode import decode_image


@pytest.fixture(scope="module")
def one_slot(vision_dir: Path) -> Iterator[str]:
    # One sequence and no queue: two choices can never be admitted together.
    settings = make_settings(vision_dir, model_path=vision_dir / f"{VLM}.gguf", n_ctx=1024,
                             n_parallel=1, max_queue=0)
    with running_server(settings) as url:
        yield url


def _ask(url: str, picture: str, n: int) -> requests.Response:
    return requests.post(f"{url}/v1/chat/completions", timeout=60, json={
        "model": VLM, "n": n, "max_tokens": 3, "temperature": 0,
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": picture}}]}]})


def test_a_refused_request_costs_no_encoder_run(one_slot: str):
    def encoded() -> float:
        return metric(one_slot, "slm_image_encodes_total", model=VLM, outcome="encoded")

    picture = data_url("teal")
    before = encoded()
    refused = _ask(one_slot, picture, n=2)
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "queue_full"
    assert encoded() == before
    taken = _ask(one_slot, picture, n=1)
    assert taken.status_code == 200, taken.text
    assert encoded() == before + 1


def test_submit_encodes_before_the_loop_sees_the_image(vision_dir: Path):
    # The model's submit returns with every image's embeddings attached: the decode loop only
    # decodes them (engine/projector.py), so an encoder run never pauses the other slots.
    import base64

    settings = Settings(models_dir=vision_dir, n_threads=2, n_ctx=512, n_parallel=2,
                        log_level="WARNING")
    model = LoadedModel.load(vision_dir / f"{VLM}.gguf", settings, LoadOptions())
    try:
        raw = base64.b64decode(data_url("navy").split(",", 1)[1])
        picture = decode_image(raw, param="image", max_pixels=10**6)
        prompt, media = model.tokenize_media(
            ["<|im_start|>user\n", picture, "What is it?<|im_end|>\n<|im_start|>assistant\n"])
        assert media and all(span.chunk.embd is None for span in media)
        gen = model.submit(GenerationRequest(prompt=prompt, max_tokens=2, media=media,
                                             sampling=SamplingParams(temperature=0)))
        assert all(span.chunk.embd is not None for span in media)
        assert len(list(gen)) >= 1
    finally:
        model.close()


def test_restore_cache_warms_a_prompt_with_an_image(one_slot: str):
    # The admin route warms exactly the tokens chat reads, the picture's included: the chat
    # request after it finds its whole prompt, image and all, in the cache.
    messages = [{"role": "user", "content": [
        {"type": "text", "text": "Which colour is this?"},
        {"type": "image_url", "image_url": {"url": data_url("olive")}}]}]
    warmed = requests.post(f"{one_slot}/restore_cache", timeout=60,
                           json={"model": VLM, "messages": messages})
    assert warmed.status_code == 200, warmed.text
    # Only the template's opening was cached before (earlier requests share it): not the image.
    assert warmed.json()["cached_tokens"] < warmed.json()["prompt_tokens"] - IMAGE_TOKENS
    answer = requests.post(f"{one_slot}/v1/chat/completions", timeout=60, json={
        "model": VLM, "messages": messages, "max_tokens": 2, "temperature": 0}).json()
    usage = answer["usage"]
    assert usage["prompt_tokens"] == warmed.json()["prompt_tokens"]
    assert usage["prompt_tokens_details"]["cached_tokens"] >= usage["prompt_tokens"] - 1
