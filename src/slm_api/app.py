"""The Flask application factory. `slm-api serve` runs it under gunicorn; any other WSGI
server can call it (`gunicorn 'slm_api.app:create_app()'`)."""

from __future__ import annotations

import logging

from flask import Flask

from slm_api.api.admin import docs, extras, health
from slm_api.api.admin import routes as admin
from slm_api.api.anthropic import routes as messages
from slm_api.api.core.errors import register_error_handlers
from slm_api.api.extract import routes as extract
from slm_api.api.ollama import routes as ollama
from slm_api.api.openai import chat, completions, embeddings, models
from slm_api.api.rerank import routes as rerank_api
from slm_api.api.responses import routes as responses_api
from slm_api.config import Settings
from slm_api.default_model import ensure_default_model
from slm_api.engine import Engine
from slm_api.hub import DownloadJobs
from slm_api.plumbing import lifecycle, observability, security, state
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
    lifecycle.init_app(app)
    for module in (health, models, admin, chat, completions, messages, responses_api, embeddings,
                   extract, extras, docs, rerank_api, ollama):
        app.register_blueprint(module.bp)
    app.register_blueprint(web_bp)

    if load_model:
        ensure_default_model(settings)
        engine.start()
    return app

