"""What a route takes and answers, declared on its view: the one source of /openapi.json.

    @bp.post("/v1/chat/completions")
    @contract(access="api", body=ChatCompletionRequest, response=ChatCompletion,
              stream=ChatCompletionChunk)
    def chat_completions() -> Response:
        \"\"\"Create a chat completion.

        Longer description, in Markdown, shown under the summary.\"\"\"

docs.py reads the contract of every route in the url_map (a route without one is still listed,
with an untyped answer), its summary from the docstring's first line and its description from
the rest. `stream`: with `"stream": true` the route answers text/event-stream, one `data:` event
of this model per frame, then `data: [DONE]`. `content_type`: a route that answers something
other than JSON (HTML, Prometheus text, static files).

`access` (required: every route says who may call it, so renaming or moving a view never changes
its rights; plumbing/security.py reads it):
- "open": anyone, no key (the page, the API docs);
- "monitoring": probes and metrics: open unless PROTECT_METRICS=1, and still answered while
  the server drains;
- "api": a client key, when keys are configured;
- "admin": admin rights (ADMIN_API_KEYS, or loopback when there are none): whatever changes what
  other clients get (models loaded, files on disk).
A view without a contract is treated as "admin": a route that forgot to say is closed, not open.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

F = TypeVar("F", bound=Callable[..., Any])
Access = Literal["open", "monitoring", "api", "admin"]


@dataclass(frozen=True)
class Contract:
    access: Access = "admin"
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


def contract(*, access: Access, **fields: Any) -> Callable[[F], F]:
    """Attach a Contract to a view function (see the module docstring)."""
    declared = Contract(access=access, **fields)

    def mark(view: F) -> F:
        view.slm_contract = declared  # type: ignore[attr-defined]
        return view

    return mark


def contract_of(view: Any) -> Contract | None:
    return getattr(view, "slm_contract", None)


def access_of(view: Any) -> Access:
    declared = contract_of(view)
    return declared.access if declared is not None else "admin"
