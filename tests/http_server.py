"""A real slm-api HTTP server on 127.0.0.1, in a thread of the test process."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from werkzeug.serving import make_server

from slm_api.app import create_app
from slm_api.config import Settings

MODEL = "gemma-3-270m-q4_k_m"


def make_settings(models_dir: Path, **overrides: object) -> Settings:
    # Small context and two threads: the suite shares two cores with everything else.
    # The Hub cache and prompt cache live beside MODELS_DIR, so tests see only what lands in it.
    base = dict(
        models_dir=models_dir,
        n_threads=2,
        n_ctx=2048,
        n_parallel=4,
        hf_home=models_dir.with_name(models_dir.name + "-hf"),
        cache_dir=models_dir.with_name(models_dir.name + "-cache"),
        data_dir=models_dir.with_name(models_dir.name + "-data"),
        log_level="WARNING",
    )
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


@contextmanager
def running_server(settings: Settings, *, load_model: bool = True) -> Iterator[str]:
    """Serve the app built from `settings`; yields its base URL."""
    app = create_app(settings, load_model=load_model)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        app.extensions["slm_engine"].close()


def model_folder(folder: Path, models_dir: Path, *aliases: str) -> Path:
    """`folder` holding the default model under its own name and under each alias (hard links:
    no copies of 250 MB)."""
    default = next(models_dir.glob("*.gguf"))
    for name in (default.name, *aliases):
        os.link(default, folder / name)
    return folder
