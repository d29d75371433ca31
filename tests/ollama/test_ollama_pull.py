"""Ollama's /api/pull, /api/delete and /api/copy, through the official `ollama` SDK against a
real server whose Hub is the local stand-in (tests/support/fakehub.py)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import ollama
import pytest
import requests
from support.http_server import make_settings, running_server

TINY = "acme/tiny-GGUF"
JUNK = b"GGUF" + bytes(200_000)  # a header nobody loads: pulls, lists, copies, deletes


@pytest.fixture
def hub_server(fake_hub, tmp_path: Path):
    models = tmp_path / "models"
    models.mkdir()
    with running_server(make_settings(models), load_model=False) as url:
        yield url, models


def ggufs(models: Path) -> list[str]:
    """Every file in MODELS_DIR that is or was becoming a model (hidden partial files too)."""
    return sorted(p.name for p in models.iterdir() if ".gguf" in p.name)


def listed(url: str) -> set[str]:
    return {m.model for m in ollama.Client(host=url).list().models}


def test_streamed_pull_then_chat_by_the_pulled_name(fake_hub, hub_server, smollm2_path: Path):
    url, models = hub_server
    data = smollm2_path.read_bytes()
    fake_hub.add_file("acme/smol-GGUF", "smol.Q4_K_M.gguf", data)
    fake_hub.add_file("acme/smol-GGUF", "smol.Q8_0.gguf", JUNK)
    fake_hub.add_file("acme/smol-GGUF", "mmproj-smol-Q4_K_M.gguf", JUNK)
    client = ollama.Client(host=url, timeout=300)

    parts = list(client.pull("hf.co/acme/smol-GGUF:q4_k_m", stream=True))

    sha = hashlib.sha256(data).hexdigest()
    statuses = [p.status for p in parts]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    pulling = [p for p in parts if p.status == f"pulling {sha[:12]}"]
    assert pulling and all(p.digest == f"sha256:{sha}" and p.total == len(data) for p in pulling)
    assert pulling[-1].completed == len(data)
    assert ggufs(models) == ["smol.Q4_K_M.gguf"]  # not the Q8_0, not the projector
    assert (models / "smol.Q4_K_M.gguf").read_bytes() == data

    assert "hf.co/acme/smol-GGUF:q4_k_m" in listed(url)
    reply = client.chat(model="hf.co/acme/smol-GGUF:q4_k_m", options={"num_predict": 3},
                        messages=[{"role": "user", "content": "Hi"}])
    assert reply.done and reply.model == "hf.co/acme/smol-GGUF:q4_k_m"


def test_pull_without_streaming_and_the_names_it_takes(fake_hub, hub_server):
    url, models = hub_server
    for name in ("tiny.Q8_0.gguf", "tiny.Q4_K_M.gguf", "tiny.IQ4_XS.gguf"):
        fake_hub.add_file(TINY, name, JUNK + name.encode())
    client = ollama.Client(host=url, timeout=120)

    # No tag: Q4_K_M, as the Hub's own Ollama integration picks.
    assert client.pull(f"hf.co/{TINY}", stream=False).status == "success"
    assert ggufs(models) == ["tiny.Q4_K_M.gguf"]
    assert client.pull(f"huggingface.co/{TINY}:tiny.Q8_0.gguf").status == "success"
    assert client.pull(f"{TINY}/tiny.IQ4_XS.gguf").status == "success"
    assert ggufs(models) == ["tiny.IQ4_XS.gguf", "tiny.Q4_K_M.gguf", "tiny.Q8_0.gguf"]
    assert listed(url) == {f"hf.co/{TINY}:latest", f"huggingface.co/{TINY}:tiny.Q8_0.gguf",
                           f"{TINY}/tiny.IQ4_XS.gguf:latest"}
    shown = client.show(f"{TINY}/tiny.IQ4_XS.gguf")  # the name resolves for every route
    assert shown.modelfile and "tiny.IQ4_XS.gguf" in shown.modelfile


def test_copy_survives_a_restart_and_delete_frees_the_file_with_its_last_name(
        fake_hub, hub_server):
    url, models = hub_server
    fake_hub.add_file(TINY, "tiny.Q4_K_M.gguf", JUNK)
    client = ollama.Client(host=url, timeout=120)
    client.pull(f"hf.co/{TINY}:Q4_K_M")

    assert client.copy(f"hf.co/{TINY}:Q4_K_M", "team/mine:v2").status == "success"
    with running_server(make_settings(models), load_model=False) as again:
        assert listed(again) == {f"hf.co/{TINY}:Q4_K_M", "team/mine:v2"}
    assert ggufs(models) == ["tiny.Q4_K_M.gguf"]  # one file, two names

    assert client.delete(f"hf.co/{TINY}:Q4_K_M").status == "success"
    assert listed(url) == {"team/mine:v2"} and ggufs(models) == ["tiny.Q4_K_M.gguf"]
    assert client.delete("team/mine:v2").status == "success"
    assert listed(url) == set() and ggufs(models) == []

    for call in (lambda: client.delete("team/mine:v2"),
                 lambda: client.copy("absent", "other")):
        with pytest.raises(ollama.ResponseError) as err:
            call()
        assert err.value.status_code == 404 and "not found" in err.value.error


def test_copy_and_delete_of_a_file_dropped_in_models_dir(hub_server):
    url, models = hub_server
    (models / "local.gguf").write_bytes(JUNK)
    client = ollama.Client(host=url)
    client.copy("local", "alias")
    assert listed(url) == {"local:latest", "alias:latest"}
    for bad in ("../../etc/passwd", "a//b", "x:", "/abs", "a" * 600):
        r = requests.post(f"{url}/api/copy", json={"source": "local", "destination": bad},
                          timeout=30)
        assert r.status_code == 400 and list(r.json()) == ["error"], (bad, r.text)
    client.delete("local")  # one name of two: the file stays under the other
    assert listed(url) == {"alias:latest"} and ggufs(models) == ["local.gguf"]
    client.copy("alias", "second")
    # The file's own name (no longer listed, still a name for it) takes the file and every
    # name given to it.
    client.delete("local")
    assert listed(url) == set() and ggufs(models) == []


@pytest.mark.parametrize("name, status, words", [
    (f"hf.co/{TINY}:Q3_K_S", 404, "no Q3_K_S quantization"),
    (f"hf.co/{TINY}:absent.gguf", 404, "not found"),
    ("hf.co/acme/absent-GGUF:Q4_K_M", 404, "not found"),
    ("llama3.2", 400, "hf.co/{owner}/{repo}:{quant}"),
    ("hf.co/../etc:Q4_K_M", 400, "owner/name"),
    (f"hf.co/{TINY}:../../x.gguf", 400, "cannot pull"),
    (f"{TINY}/../x.gguf", 400, "cannot pull"),
    (f"hf.co/{TINY}:..x.gguf", 400, "filename"),
    (f"hf.co/{TINY}:$(rm).gguf", 400, "filename"),
    (f"hf.co/{TINY}:Q4 K M", 400, "quantization"),
    ("hf.co/" + "a" * 600, 400, "model"),
])
def test_pull_refusals(fake_hub, hub_server, name, status, words):
    url, models = hub_server
    fake_hub.add_file(TINY, "tiny.Q4_K_M.gguf", JUNK)
    with pytest.raises(ollama.ResponseError) as err:
        ollama.Client(host=url).pull(name, stream=True).__next__()
    assert err.value.status_code == status and words in err.value.error, err.value.error
    assert ggufs(models) == []


def test_failed_downloads_leave_nothing(fake_hub, hub_server):
    url, models = hub_server
    fake_hub.add_file(TINY, "broken.Q4_K_M.gguf", b"GGUF" + bytes(500_000))
    fake_hub.drop_after = 100_000
    client = ollama.Client(host=url, timeout=120)
    with pytest.raises(ollama.ResponseError) as err:
        list(client.pull(f"hf.co/{TINY}", stream=True))  # the stream's last line: an error
    assert "Hub" in err.value.error
    assert ggufs(models) == [] and listed(url) == set()

    # Bytes that are not what the Hub listed: refused before the file takes its name.
    fake_hub.drop_after = None
    fake_hub.add_file(TINY, "tiny.Q4_K_M.gguf", JUNK)
    fake_hub.repos[TINY]["main"]["tiny.Q4_K_M.gguf"].sha256 = "0" * 64
    with pytest.raises(ollama.ResponseError) as err:
        client.pull(f"hf.co/{TINY}:tiny.Q4_K_M.gguf", stream=False)
    assert err.value.status_code == 502 and "sha256" in err.value.error
    assert ggufs(models) == [] and listed(url) == set()


def test_a_plain_key_is_refused_in_ollamas_shape(fake_hub, tmp_path: Path):
    fake_hub.add_file(TINY, "tiny.Q4_K_M.gguf", JUNK)
    (tmp_path / "local.gguf").write_bytes(JUNK)
    settings = make_settings(tmp_path, openai_api_keys=("sk-plain:plain",),
                             admin_api_keys=("sk-admin:admin",))
    with running_server(settings, load_model=False) as url:
        plain = ollama.Client(host=url, headers={"Authorization": "Bearer sk-plain"})
        calls = {"pull": lambda: plain.pull(f"hf.co/{TINY}"),
                 "copy": lambda: plain.copy("local", "other"),
                 "delete": lambda: plain.delete("local")}
        for what, call in calls.items():
            with pytest.raises(ollama.ResponseError) as err:
                call()
            assert err.value.status_code == 403, what
        r = requests.delete(f"{url}/api/delete", json={"model": "local"}, timeout=30,
                            headers={"Authorization": "Bearer sk-plain"})
        assert r.status_code == 403 and list(r.json()) == ["error"]
        assert (tmp_path / "local.gguf").is_file() and not list(tmp_path.glob("tiny*"))

        admin = ollama.Client(host=url, headers={"Authorization": "Bearer sk-admin"})
        assert admin.pull(f"hf.co/{TINY}").status == "success"
        assert (tmp_path / "tiny.Q4_K_M.gguf").is_file()


def test_a_client_that_goes_away_cancels_its_pull(fake_hub, hub_server, monkeypatch):
    from slm_api.api.ollama import pull

    monkeypatch.setattr(pull, "HEARTBEAT_S", 0.1)  # write often: the hang-up shows at once
    url, models = hub_server
    fake_hub.add_file(TINY, "tiny.Q4_K_M.gguf", b"GGUF" + bytes(12_000_000))
    # huggingface_hub reports progress per 10 MiB read: hold the body past the first report.
    fake_hub.hold_after = 11 * 1024 * 1024
    with requests.post(f"{url}/api/pull", json={"model": f"hf.co/{TINY}"}, stream=True,
                       timeout=60) as r:
        lines = r.iter_lines()
        assert json.loads(next(lines)) == {"status": "pulling manifest"}
        while not json.loads(next(lines)).get("completed"):
            pass  # the transfer is held now, mid-file
    time.sleep(2)  # the server's next writes find the connection closed and cancel the job
    fake_hub.release.set()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # uncancelled, the rest lands in well under a second
        assert ggufs(models) == []
        time.sleep(0.2)
    assert listed(url) == set()


def test_a_second_pull_reuses_the_file_and_never_replaces_another(fake_hub, hub_server):
    url, models = hub_server
    fake_hub.add_file(TINY, "tiny.Q4_K_M.gguf", JUNK)
    fake_hub.add_file("other/tiny-GGUF", "tiny.Q4_K_M.gguf", JUNK + b"other")
    fake_hub.add_file("third/tiny-GGUF", "tiny.Q4_K_M.gguf", JUNK[:-5] + b"third")
    client = ollama.Client(host=url, timeout=120)
    client.pull(f"hf.co/{TINY}")
    downloads = [r for r in fake_hub.requests if r.startswith("GET") and "/resolve/" in r]

    statuses = [p.status for p in client.pull(f"hf.co/{TINY}:Q4_K_M", stream=True)]
    assert statuses[-1] == "success" and "verifying sha256 digest" in statuses
    assert [r for r in fake_hub.requests if r.startswith("GET") and "/resolve/" in r] \
        == downloads  # nothing fetched again
    assert listed(url) == {f"hf.co/{TINY}:latest", f"hf.co/{TINY}:Q4_K_M"}

    # Same file name, other bytes: another model, kept (other size: refused before streaming;
    # same size: after hashing, as the stream's last line).
    for name in ("hf.co/other/tiny-GGUF", "hf.co/third/tiny-GGUF"):
        with pytest.raises(ollama.ResponseError) as err:
            list(client.pull(name, stream=True))
        assert "already holds another tiny.Q4_K_M.gguf" in err.value.error
    r = requests.post(f"{url}/api/pull", json={"model": "hf.co/other/tiny-GGUF"}, timeout=60)
    assert r.status_code == 409 and list(r.json()) == ["error"]
    assert (models / "tiny.Q4_K_M.gguf").read_bytes() == JUNK
