"""A slm-api server started for a benchmark, the way users start it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from slm_api.config import DEFAULT_MODEL_FILE  # noqa: E402

MODEL = REPO / "models" / DEFAULT_MODEL_FILE


def sse_events(lines: Iterable[bytes]) -> Iterator[dict]:
    """The JSON events of an OpenAI-style SSE stream (`requests`' iter_lines), `[DONE]` left out."""
    for line in lines:
        if line.startswith(b"data: ") and line != b"data: [DONE]":
            yield json.loads(line[6:])


def load_vocab(path: Path) -> tuple[object, object, int]:
    """A GGUF's vocabulary alone (no weights): llama.cpp's vocab pointer and its size, for the
    grammar benchmarks that time masks without a server. Also the model, to free."""
    import llama_cpp

    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    vocab = llama_cpp.llama_model_get_vocab(model)
    return model, vocab, llama_cpp.llama_vocab_n_tokens(vocab)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m slm_api serve` on a free port, configured by environment variables."""

    def __init__(self, log: Path | None = None, **env_vars: object):
        """`log`: a file for the server's stderr (its log), else it is discarded."""
        self.port = free_port()
        env = {**os.environ, "N_CTX": "1024", "LOG_LEVEL": "WARNING", "MAX_QUEUE": "256",
               "PYTHONPATH": str(REPO / "src"), "MODELS_DIR": str(MODEL.parent),
               **{k: str(v) for k, v in env_vars.items()}}
        with open(log or os.devnull, "wb") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "slm_api", "serve", "--host", "127.0.0.1", "--port",
                 str(self.port)], env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/health", timeout=10).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("server did not start")

    def worker_pids(self) -> list[int]:
        """The gunicorn worker (the process that holds the model); the master if none yet."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return [int(pid) for pid in children.split()] or [self.proc.pid]

    def rss_mb(self) -> float:
        """Resident memory of the gunicorn worker (the process that holds the model)."""
        total = 0.0
        for pid in self.worker_pids():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        return total

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
