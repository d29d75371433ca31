"""The Flask application factory. `slm-api serve` runs it under gunicorn; a WSGI server given a
module and a name gets `slm_api.app:app`, built on first use (`gunicorn -w 1 -b 0.0.0.0:8000
slm_api.app:app`, with gunicorn.conf.py for the worker), or calls the factory itself."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

from slm_api.api.admin import docs, extras, health
from slm_api.api.admin import routes as admin
from slm_api.api.anthropic import routes as messages
from slm_api.api.core.errors import register_error_handlers
from slm_api.api.extract import routes as extract
from slm_api.api.infill import routes as infill
from slm_api.api.ollama import admin_routes as ollama_admin
from slm_api.api.ollama import routes as ollama
from slm_api.api.openai import routes as openai
from slm_api.api.openai.transcriptions import audio_bp
from slm_api.api.rerank import routes as rerank_api
from slm_api.api.responses import routes as responses_api
from slm_api.config import Settings
from slm_api.default_model import ensure_default_model, write_on_first_start
from slm_api.engine import Engine
from slm_api.hub import DownloadJobs
from slm_api.plumbing import lifecycle, observability, ratelimit, security, state
from slm_api.web import bp as web_bp


def create_app(settings: Settings | None = None, *, load_model: bool = True) -> Flask:
    """Build the app. `settings` defaults to the environment and `.env`; `load_model=False`
    starts with no model (the tests of /health's 503, and fast admin-only apps)."""
    settings = settings or Settings.from_env()
    logging.basicConfig(level=settings.log_level.upper())
    app = Flask(__name__, static_folder=None)  # /docs serves its own assets
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json.sort_keys = False  # keep OpenAI's field order, readable in curl output

    settings.models_dir.mkdir(parents=True, exist_ok=True)
    engine = Engine(settings)
    state.init_app(app, settings, engine, DownloadJobs(settings))

    register_error_handlers(app)
    # Request ids and the access log first: responses refused by security carry them too.
    observability.init_app(app)
    security.init_app(app)
    # After security's hook, which names the client the limits are kept for; the store's
    # failures are counted in the app's metrics.
    metrics = observability.get_metrics(app)
    ratelimit.init_app(app, settings, security.exempt(settings),
                       registry=metrics.registry if metrics is not None else None)
    lifecycle.init_app(app)
    for bp in (health.bp, openai.models_bp, admin.bp, openai.chat_bp, openai.completions_bp,
               messages.bp, responses_api.bp, openai.embeddings_bp, extract.bp, extras.bp, docs.bp,
               rerank_api.bp, ollama.bp, ollama_admin.bp,
               infill.bp, audio_bp):
        app.register_blueprint(bp)
    app.register_blueprint(web_bp)

    if load_model:
        ensure_default_model(settings)
        engine.start()
    return app


# `slm_api.app:app`: one app per process, for WSGI servers that import it by name. Built on first
# access (PEP 562), not at import, so importing this module (the tests, `create_app`) loads no
# model; the tests never touch it, so no test shares it.
_lazy: dict[str, Flask] = {}
_lazy_lock = threading.Lock()
log = logging.getLogger(__name__)


def __getattr__(name: str) -> Any:
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _lazy_lock:
        if "app" not in _lazy:
            settings = Settings.from_env()
            settings.validate()  # as `slm-api serve` does: a bad setting stops the start
            write_on_first_start(settings)  # as `slm-api serve` does: both embedded models
            app = create_app(settings)
            app.wsgi_app = _warn_single_threaded(app.wsgi_app)  # type: ignore[method-assign]
            _lazy["app"] = app
    return _lazy["app"]


def _warn_single_threaded(wsgi_app: Callable) -> Callable:
    """A WSGI server with one thread (gunicorn's default sync worker, when it found no
    gunicorn.conf.py) serves one request at a time: a stream holds it, /health included. The
    app cannot change its server, so it says so once, in the log."""
    warned = threading.Event()

    def wrapped(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if not warned.is_set() and not environ.get("wsgi.multithread", True):
            warned.set()
            log.warning("this WSGI server runs one request at a time, so one stream blocks "
                        "every other request and /health; start `slm-api serve`, or gunicorn "
                        "with `-c python:slm_api.gunicorn_conf` (see the README)")
        return wsgi_app(environ, start_response)

    return wrapped
