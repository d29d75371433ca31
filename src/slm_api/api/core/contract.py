"""What a route takes and answers, declared on its view: the one source of /openapi.json.

    @bp.post("/v1/chat/completions")
    @contract(body=ChatCompletionRequest, response=ChatCompletion, stream=ChatCompletionChunk)
    def chat_completions() -> Response:
        \"\"\"Create a chat completion.

        Longer description, in Markdown, shown under the summary.\"\"\"

docs.py reads the contract of every route in the url_map (a route without one is still listed,
with an untyped answer), its summary from the docstring's first line and its description from
the rest. `stream`: with `"stream": true` the route answers text/event-stream, one `data:` event
of this model per frame, then `data: [DONE]`. `content_type`: a route that answers something
other than JSON (HTML, Prometheus text, static files).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Contract:
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    stream: type[BaseModel] | None = None
    content_type: str | tuple[str, ...] = "application/json"
    status: int = 200  # the success status
    statuses: tuple[int, ...] = ()  # other success statuses with the same body (202, ...)
    error: type[BaseModel] | None = None  # the error body, when not OpenAI's (Anthropic's)
    named_events: bool = False  # stream frames carry `event: <type>` and end without [DONE]
    # The body may carry images or audio: MAX_MEDIA_REQUEST_BYTES bounds it instead of
    # MAX_REQUEST_BYTES (plumbing/security.py), so a phone photo fits where images go and a
    # text-only route keeps the small limit.
    media: bool = False
    body_content_type: str = "application/json"  # multipart/form-data for an upload


def contract(**fields: Any) -> Callable[[F], F]:
    """Attach a Contract to a view function (see the module docstring)."""
    declared = Contract(**fields)

    def mark(view: F) -> F:
        view.slm_contract = declared  # type: ignore[attr-defined]
        return view

    return mark


def contract_of(view: Any) -> Contract | None:
    return getattr(view, "slm_contract", None)
