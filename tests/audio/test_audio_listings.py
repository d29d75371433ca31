"""What the server says about an audio model (issue 38): OpenAI's `input_modalities`, Ollama's
`capabilities` (Ollama names audio input "audio", beside "vision" for images), /health's
projector. Read as the clients read them: the openai and ollama SDKs."""

from __future__ import annotations

from pathlib import Path

import ollama
import openai
import requests
from support.audio_gguf import MMPROJ_NAME
from support.audio_server import ALM, VLM, audio_settings
from support.http_server import running_server


def test_v1_models_says_the_audio_model_reads_audio(aclient: openai.OpenAI):
    by_id = {m.id: m.model_extra for m in aclient.models.list()}
    assert by_id[ALM]["input_modalities"] == ["text", "audio"]
    # The vision model beside it: its projector takes images only.
    assert by_id[VLM]["input_modalities"] == ["text", "image"]
    assert not any(name.startswith("mmproj-") for name in by_id)


def test_api_show_lists_the_audio_capability(audio_server: str):
    client = ollama.Client(host=audio_server, timeout=60)
    caps = client.show(ALM).capabilities
    assert "audio" in caps and "completion" in caps
    assert "vision" not in caps
    vision_caps = client.show(VLM).capabilities
    assert "vision" in vision_caps and "audio" not in vision_caps


def test_health_names_the_audio_projector(audio_server: str):
    health = requests.get(f"{audio_server}/health", timeout=10).json()
    assert health["model"] == ALM
    assert health["mmproj"] == MMPROJ_NAME
    assert health["input_modalities"] == ["text", "audio"]


def test_a_model_not_loaded_is_listed_from_its_projector_header(audio_dir: Path):
    with running_server(audio_settings(audio_dir), load_model=False) as url:
        models = requests.get(f"{url}/v1/models", timeout=10).json()["data"]
        by_id = {m["id"]: m for m in models}
        assert not by_id[ALM]["loaded"]
        assert by_id[ALM]["input_modalities"] == ["text", "audio"]
        caps = requests.post(f"{url}/api/show", json={"model": ALM}, timeout=10).json()
        assert "audio" in caps["capabilities"]
