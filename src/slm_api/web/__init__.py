"""The page at `/`: try the server in a browser (chat with streaming, extraction).

Plain HTML, CSS and JavaScript served from slm_api/web/static: no CDN, no build step, so it works
on an offline machine. The page calls the public API like any client (the same key checks), so it
is itself open: a visitor needs it to type the key in.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, send_from_directory

from slm_api.api.core.contract import contract

bp = Blueprint("web", __name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
# Everything the page loads comes from this server; inline scripts and other origins are refused
# by the browser, so pasted model output or text can never run as code.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


def _page_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/")
@contract(access="open", content_type="text/html")
def index() -> Response:
    """The web page: chat with a model, extract JSON with a schema."""
    return _page_headers(send_from_directory(STATIC_DIR, "index.html", max_age=0))


@bp.get("/web/<path:filename>")
@contract(access="open", content_type=("text/css", "text/javascript", "text/html"))
def asset(filename: str) -> Response:
    """The web page's scripts and styles."""
    # send_from_directory refuses paths that leave the folder; max_age 0 + ETag: a new version
    # of the page is picked up on the next load.
    return _page_headers(send_from_directory(STATIC_DIR, filename, max_age=0))
