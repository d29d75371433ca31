"""POST /load downloads a GGUF from the Hub (a local fake of it), then /reload serves it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from support.http_server import make_settings, running_server


@pytest.fixture
def hub_server(fake_hub, tmp_path: Path):
    with running_server(make_settings(tmp_path), load_model=False) as url:
        yield url, tmp_path


def test_load_then_reload_serves_the_download(fake_hub, hub_server, model_path: Path):
    url, models = hub_server
    fake_hub.add_file("acme/gemma-small", "gemma-small.Q4_K_M.gguf", model_path.read_bytes())
    r = requests.post(
        f"{url}/load",
        timeout=300,
        json={"repo_id": "acme/gemma-small", "filename": "gemma-small.Q4_K_M.gguf"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "downloaded"
    assert body["repo_id"] == "acme/gemma-small"
    assert Path(body["path"]).parent == models.resolve()
    assert Path(body["path"]).stat().st_size == model_path.stat().st_size
    assert "/reload" in body["hint"]
    assert sorted(p.name for p in models.iterdir() if p.suffix == ".gguf") == [
        "gemma-small.Q4_K_M.gguf"
    ]

    r = requests.post(f"{url}/reload", json={"model_path": "gemma-small.Q4_K_M.gguf"}, timeout=120)
    assert r.status_code == 200, r.text
    r = requests.post(
        f"{url}/v1/chat/completions",
        timeout=60,
        json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3},
    )
    assert r.status_code == 200 and r.json()["model"] == "gemma-small.Q4_K_M"


@pytest.mark.parametrize(
    "body, status",
    [
        ({"repo_id": "acme/absent", "filename": "x.gguf"}, 404),
        ({"repo_id": "acme/tiny", "filename": "absent.gguf"}, 404),
        ({"repo_id": "acme/tiny", "filename": "tiny.gguf", "revision": "nope"}, 404),
        ({"repo_id": "acme/tiny", "filename": "../tiny.gguf"}, 400),
        ({"repo_id": "acme/tiny", "filename": "sub/tiny.gguf"}, 400),
        ({"repo_id": "acme/tiny", "filename": "tiny.bin"}, 400),
        ({"repo_id": "../../etc", "filename": "tiny.gguf"}, 400),
        ({"repo_id": "acme/tiny"}, 400),
    ],
)
def test_load_refusals(fake_hub, hub_server, body, status):
    url, models = hub_server
    fake_hub.add_file("acme/tiny", "tiny.gguf", b"GGUF" + bytes(64))
    r = requests.post(f"{url}/load", json=body, timeout=60)
    assert r.status_code == status, r.text
    assert r.json()["error"]["message"]
    assert not [p for p in models.iterdir() if p.is_file()]


def test_hub_unreachable_is_502(hub_server, monkeypatch):
    url, models = hub_server
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    r = requests.post(
        f"{url}/load", json={"repo_id": "acme/tiny", "filename": "tiny.gguf"}, timeout=120
    )
    assert r.status_code == 502, r.text
    assert not [p for p in models.iterdir() if p.is_file()]


def wait_for_job(url: str, job_id: str, states=("done", "failed", "cancelled")) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = requests.get(f"{url}/load/{job_id}", timeout=10).json()
        if job["state"] in states:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {job['state']}")


# huggingface_hub reports progress per 10 MiB read: the hub holds the body past the first report.
HOLD_AT = 11 * 1024 * 1024


def test_async_download_of_a_xet_backed_file_reports_progress(fake_hub, hub_server):
    """The Hub marks most new files as Xet-backed; the server fetches them over plain HTTP
    (following the Xet headers would ask this hub for a Xet token it does not give)."""
    url, models = hub_server
    data = b"GGUF" + bytes(12_000_000)
    fake_hub.add_file("acme/big", "big.gguf", data, xet=True)
    fake_hub.hold_after = HOLD_AT
    r = requests.post(f"{url}/load", json={"repo_id": "acme/big", "filename": "big.gguf",
                                           "async": True}, timeout=30)
    assert r.status_code == 202
    job_id = r.json()["job_id"]
    job = wait_for_progress(url, job_id)
    assert job["state"] == "running" and 0 < job["bytes_done"] < len(data)
    assert job["bytes_total"] == len(data)
    fake_hub.release.set()
    job = wait_for_job(url, job_id)
    assert job["state"] == "done", job
    assert job["bytes_done"] == job["bytes_total"] == len(data)
    assert (models / "big.gguf").read_bytes() == data
    assert not [r for r in fake_hub.requests if "xet-read-token" in r]
    assert requests.get(f"{url}/load/dl-nope", timeout=10).status_code == 404


def wait_for_progress(url: str, job_id: str) -> dict:
    deadline = time.monotonic() + 120
    while True:
        job = requests.get(f"{url}/load/{job_id}", timeout=10).json()
        if job["bytes_done"] > 0 or job["state"] != "running":
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def test_cancelled_download_leaves_nothing(fake_hub, hub_server):
    url, models = hub_server
    fake_hub.add_file("acme/big", "slow.gguf", b"GGUF" + bytes(30_000_000), xet=True)
    fake_hub.hold_after = HOLD_AT
    r = requests.post(f"{url}/load", json={"repo_id": "acme/big", "filename": "slow.gguf",
                                           "async": True}, timeout=30)
    job_id = r.json()["job_id"]
    assert wait_for_progress(url, job_id)["state"] == "running"  # held mid-file
    assert requests.delete(f"{url}/load/{job_id}", timeout=10).status_code == 200
    fake_hub.release.set()
    assert wait_for_job(url, job_id)["state"] == "cancelled"
    assert not [p for p in models.iterdir() if p.is_file()]


def test_dropped_connection_leaves_nothing(fake_hub, hub_server):
    url, models = hub_server
    fake_hub.add_file("acme/big", "broken.gguf", b"GGUF" + bytes(500_000))
    fake_hub.drop_after = 100_000
    r = requests.post(f"{url}/load", json={"repo_id": "acme/big", "filename": "broken.gguf"},
                      timeout=120)
    assert r.status_code == 502, r.text
    assert not [p for p in models.iterdir() if p.is_file()]


def test_allowlist_and_disk_space(fake_hub, tmp_path, monkeypatch):
    import shutil

    from slm_api import hub

    fake_hub.add_file("acme/tiny", "tiny.gguf", b"GGUF" + bytes(64))
    settings = make_settings(tmp_path, allowed_repos=("acme/other",))
    with running_server(settings, load_model=False) as url:
        r = requests.post(f"{url}/load", json={"repo_id": "acme/tiny", "filename": "tiny.gguf"},
                          timeout=30)
        assert r.status_code == 403 and r.json()["error"]["param"] == "repo_id"
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(hub.shutil, "disk_usage", lambda _: usage._replace(free=1000))
    with running_server(make_settings(tmp_path), load_model=False) as url:
        r = requests.post(f"{url}/load", json={"repo_id": "acme/tiny", "filename": "tiny.gguf"},
                          timeout=30)
        assert r.status_code == 507 and "disk" in r.json()["error"]["message"]
    assert not [p for p in tmp_path.iterdir() if p.is_file()]
