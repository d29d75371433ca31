"""DNS rebinding through real HTTP: a loopback peer carrying a foreign Host header is refused
wherever the server trusts network position, and nowhere else."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from support.http_server import make_settings, running_server

from slm_api.plumbing.hosts import default_allowed_hosts, host_without_port

CHAT = {"messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 2}
REBOUND = {"Host": "attacker.example"}


@pytest.fixture(scope="module")
def empty_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hosts-models")


def _serve(folder: Path, **overrides: object):
    return running_server(make_settings(folder, **overrides), load_model=False)


def _refused(r: requests.Response) -> None:
    assert r.status_code == 403, r.text
    error = r.json()["error"]
    assert error["code"] == "host_not_allowed" and error["type"] == "permission_error"
    assert "ALLOWED_HOSTS" in error["message"]


def _port(url: str) -> int:
    return urlsplit(url).port  # type: ignore[return-value]


def test_host_header_parsing():
    assert host_without_port("[::1]:8000") == "[::1]"
    assert host_without_port("LocalHost.:8000") == "localhost"
    assert host_without_port("127.0.0.1") == "127.0.0.1"
    assert default_allowed_hosts("0.0.0.0")[:3] == ("localhost", "127.0.0.1", "[::1]")
    assert "10.1.2.3" in default_allowed_hosts("10.1.2.3")
    assert "0.0.0.0" not in default_allowed_hosts("0.0.0.0")


def test_rebinding_refused_on_admin_and_user_routes(empty_dir):
    with _serve(empty_dir) as url:
        # What the issue tried: a page whose name resolves to 127.0.0.1 loading a model.
        _refused(requests.post(f"{url}/v1/models", json={"model": "x"}, headers=REBOUND,
                               timeout=10))
        _refused(requests.post(f"{url}/reload", json={"model_path": "x.gguf"}, headers=REBOUND,
                               timeout=10))
        _refused(requests.post(f"{url}/load", json={"repo_id": "a/b", "filename": "c.gguf"},
                               headers=REBOUND, timeout=10))
        _refused(requests.post(f"{url}/v1/chat/completions", json=CHAT,
                               headers={"Host": f"attacker.example:{_port(url)}"}, timeout=10))
        # Names that merely look local are names all the same: rebinding can use them.
        for name in ("127.0.0.1.nip.io", "localhost.attacker.example", "0x7f000001.example"):
            _refused(requests.post(f"{url}/v1/chat/completions", json=CHAT,
                                   headers={"Host": name}, timeout=10))
        # The same requests under the server's own names pass security (the view answers).
        # Addresses are never a rebinding Host (a page whose URL is an address came from it).
        for host in (f"localhost:{_port(url)}", f"127.0.0.1:{_port(url)}", f"[::1]:{_port(url)}",
                     "localhost", f"{socket.gethostname()}:{_port(url)}", "192.168.1.5:8000",
                     "[fd00::5]:8000"):
            r = requests.post(f"{url}/reload", json={"model_path": "x.gguf"},
                              headers={"Host": host}, timeout=10)
            assert (r.status_code, r.json()["error"]["code"]) == (404, "model_not_found"), host
            r = requests.post(f"{url}/v1/chat/completions", json=CHAT, headers={"Host": host},
                              timeout=10)
            assert (r.status_code, r.json()["error"]["code"]) == (503, "no_model_loaded"), host
        # Routes that give nothing away stay open under any name: balancers and probes send
        # their own Host.
        for path in ("/health", "/ready"):
            assert requests.get(url + path, headers=REBOUND, timeout=10).status_code == 503
        local = {"Host": f"localhost:{_port(url)}"}
        docs = requests.get(f"{url}/docs", headers=local, timeout=10)
        assert docs.status_code == 200 and "text/html" in docs.headers["Content-Type"]
        assert requests.get(f"{url}/", headers=local, timeout=10).status_code == 200


def test_configured_name_and_wildcard(empty_dir):
    with _serve(empty_dir, allowed_hosts=("slm.internal",)) as url:
        ok = requests.post(f"{url}/v1/chat/completions", json=CHAT, timeout=10,
                           headers={"Host": f"slm.internal:{_port(url)}"})
        assert ok.json()["error"]["code"] == "no_model_loaded"
        # Loopback names stay allowed beside the configured list.
        ok = requests.post(f"{url}/v1/chat/completions", json=CHAT, timeout=10,
                           headers={"Host": "localhost"})
        assert ok.json()["error"]["code"] == "no_model_loaded"
        _refused(requests.post(f"{url}/v1/chat/completions", json=CHAT, headers=REBOUND,
                               timeout=10))
    with _serve(empty_dir, allowed_hosts=("*",)) as url:
        r = requests.post(f"{url}/reload", json={"model_path": "x.gguf"}, headers=REBOUND,
                          timeout=10)
        assert r.json()["error"]["code"] == "model_not_found"


def test_keys_decide_when_configured(empty_dir):
    with _serve(empty_dir, openai_api_keys=("k:team",)) as url:
        # User routes: a key is the credential, whatever Host says.
        r = requests.post(f"{url}/v1/chat/completions", json=CHAT, timeout=10,
                          headers={**REBOUND, "Authorization": "Bearer k"})
        assert r.json()["error"]["code"] == "no_model_loaded"
        # Admin routes without ADMIN_API_KEYS still trust loopback, so they still check Host.
        _refused(requests.post(f"{url}/reload", json={"model_path": "x.gguf"}, timeout=10,
                               headers={**REBOUND, "Authorization": "Bearer k"}))
    with _serve(empty_dir, openai_api_keys=("k:team",), admin_api_keys=("adm:ops",)) as url:
        r = requests.post(f"{url}/reload", json={"model_path": "x.gguf"}, timeout=10,
                          headers={**REBOUND, "Authorization": "Bearer adm"})
        assert r.json()["error"]["code"] == "model_not_found"
