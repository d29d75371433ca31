"""`slm-api serve` (also `python -m slm_api`), the one way to start the server, and
`slm-api fetch-default-model`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from slm_api.config import Settings


def _settings(args: argparse.Namespace) -> Settings:
    """The environment and .env, with the command line's flags winning over both."""
    flags = {"host": args.host, "port": args.port, "log_level": args.log_level,
             "model_path": Path(args.model).expanduser() if args.model else None}
    settings = Settings.from_env().with_overrides(
        **{name: value for name, value in flags.items() if value is not None}
    )
    settings.validate()
    return settings


def _serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    from slm_api.default_model import write_on_first_start

    write_on_first_start(settings)
    from gunicorn.app.base import BaseApplication

    from slm_api.server import options as gunicorn_options

    class _Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in gunicorn_options.options(settings).items():
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
