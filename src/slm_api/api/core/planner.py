"""One planner for every prompt: a turn (a chat, a raw prompt) and the model's chat format in,
a `Plan` out: the prompt's text and tokens, the tools it shows, the grammar the reply follows
(and the answer's own, after any thinking), the thinking budget and where the reply starts.

Pure: no Flask, no engine, nothing submitted. Chat completions, Messages, Responses, Ollama's
/api/chat and /api/generate, /v1/extract, /extras/apply-template and /restore_cache all plan
here, so the prompt a debug or cache route shows is the one a generation reads, and a request
that will be refused is refused before anything is submitted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slm_api.api.core.protocol import LoadModelConfigs, ResponseFormat
from slm_api.api.core.structured import response_format_grammar
from slm_api.engine import SamplingParams
from slm_api.errors import APIError
from slm_api.prompting.chat_format import ChatFormatter, ToolMarkup, forced_functions
from slm_api.prompting.reasoning import thinking_kwargs
from slm_api.prompting.tool_limits import one_call_limit, one_call_stops

# Text -> token ids; `param` names the request field a too-long prompt is blamed on.
Tokenize = Callable[..., list[int]]


def plan_tools(
    tools: list[dict[str, Any]] | None,
    tool_choice: Any,
    response_format: ResponseFormat | None,
    markup: ToolMarkup,
) -> tuple[list[dict[str, Any]] | None, str | None]:
    """Which tools the prompt shows, and the grammar (if any) that constrains the reply: a forced
    tool_choice becomes a grammar for one call in the model's own markup (the one its template
    taught it, so the prompt and the constraint agree), else a response format one for JSON."""
    choice = tool_choice if tool_choice is not None else ("auto" if tools else "none")
    if not tools:
        if choice not in ("auto", "none"):
            raise APIError(400, "a forced tool_choice needs a non-empty tools list",
                           param="tool_choice")
        choice = "none"  # nothing to choose from: "auto" is harmless
    grammar = response_format_grammar(response_format)
    if tools and choice != "none":
        fns = forced_functions(tools, choice)
        if fns is not None:
            # A forced call has no text for the format to shape: the call's grammar wins (as
            # OpenAI does; the Agents SDK sends both when an agent has an output_type).
            grammar = markup.grammar(fns)
        return tools, grammar
    return None, grammar


@dataclass
class Turn:
    """One chat-shaped request, in the chat formatter's terms."""

    model: str | None
    messages: list[dict[str, Any]]
    sampling: SamplingParams = field(default_factory=SamplingParams)
    max_tokens: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    response_format: ResponseFormat | None = None
    stop: list[str] = field(default_factory=list)
    load_configs: LoadModelConfigs | None = None
    # A reasoning model's thinking: None as its template does by default, False off, True on;
    # `reasoning_effort` reaches templates that read it; `template_kwargs` are the client's
    # chat_template_kwargs (an `enable_thinking` there decides).
    thinking: bool | None = None
    reasoning_effort: str | None = None
    template_kwargs: dict[str, Any] | None = None
    # At most this many tokens of thinking, then the server closes the block (api/core/
    # thinking.py); 0: no thinking.
    thinking_budget: int | None = None
    # False: at most one tool call (OpenAI's parallel_tool_calls, Anthropic's
    # disable_parallel_tool_use). A forced call's grammar allows one anyway; a free reply
    # stops at the first call's closing markup and nothing after it is parsed.
    parallel_tool_calls: bool | None = None
    # The request field a prompt too long for the context is blamed on.
    prompt_param: str = "messages"

    @property
    def thinking_enabled(self) -> bool | None:
        asked = (self.template_kwargs or {}).get("enable_thinking")
        if isinstance(asked, bool):
            return asked
        if self.thinking is not None and self.thinking_budget != 0:
            return self.thinking
        return False if self.reasoning_effort == "none" or self.thinking_budget == 0 else None


@dataclass
class RawTurn:
    """A prompt sent as it is, no template around it (/v1/completions, Ollama's raw
    /api/generate): text, or token ids already, or OpenAI content parts (text and images in
    order), which api/core/media.py's plan_with_media turns into text and media first."""

    prompt: str | list[int] | list[dict[str, Any]]
    response_format: ResponseFormat | None = None
    stop: list[str] = field(default_factory=list)
    # Whether a reasoning model's markup applies (its thinking split off the reply, a grammar
    # leaving it room to think first), and the client's switch for it.
    reasoning: bool = False
    thinking: bool | None = None
    prompt_param: str = "prompt"
    # Each media part's request field, in order (`prompt.multimodal_data.0`), for refusals.
    media_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    """What a generation reads and how its reply is read back."""

    # The prompt as text (with a per-request marker where each image or sound sits); routes
    # read `prompt`/`tokens`/`media`, never build them.
    prompt: str
    tokens: list[int]
    # The tools the prompt shows (None: none, so the reply is not parsed for calls).
    tools: list[dict[str, Any]] | None = None
    # The whole reply's grammar (thinking first when the model thinks), and the answer's.
    grammar: str | None = None
    answer_grammar: str | None = None
    # At most this many tokens of thinking (api/core/thinking.py); None: no budget.
    budget: int | None = None
    # The prompt opened the thinking block: the reply starts inside it.
    thinks_from_start: bool = False
    # Stop strings: the client's, then the chat format's end-of-turn markers.
    stop: tuple[str, ...] = ()
    # Whether the reply is read for a reasoning model's thinking.
    reasoning: bool = True
    # At most this many tool calls are read from the reply (None: any number).
    max_calls: int | None = None
    # The prompt's images and sounds at their places in `tokens` (engine MediaSpans; the
    # conversation core tokenizes a prompt with media through the model's projector).
    media: tuple[Any, ...] = ()


def plan(chat: ChatFormatter, turn: Turn | RawTurn, tokenize: Tokenize) -> Plan:
    """The plan for `turn` on a model with chat format `chat`; `tokenize(text, param=...)`
    is the model's tokenizer. Raises APIError for a turn the model cannot take."""
    if isinstance(turn, RawTurn):
        return _plan_raw(chat, turn, tokenize)
    return _plan_chat(chat, turn, tokenize)


def _plan_chat(chat: ChatFormatter, turn: Turn, tokenize: Tokenize) -> Plan:
    tools, grammar = plan_tools(turn.tools, turn.tool_choice, turn.response_format,
                                chat.tool_markup)
    markup, enabled = chat.reasoning, turn.thinking_enabled
    kwargs = {**(turn.template_kwargs or {}),
              **thinking_kwargs(markup, enabled, turn.reasoning_effort)}
    prompt = chat.render(turn.messages, tools=tools, add_generation_prompt=True,
                         template_kwargs=kwargs or None)
    if markup is not None and enabled is False and (
            not markup.toggle or markup.opened_by(prompt)):
        prompt += markup.closing(prompt)  # an empty block: how Qwen3 turns thinking off
    budget = turn.thinking_budget if markup is not None and enabled is not False else None
    if budget is not None and markup is not None and not markup.opened_by(prompt):
        prompt += f"{markup.open}\n"  # a budget is for thinking: the reply starts in it
    inside = markup is not None and markup.opened_by(prompt)
    answer_grammar = grammar
    if markup is not None and grammar is not None and enabled is not False and budget is None:
        grammar = markup.think_first(grammar, inside)  # free thinking, then the answer
    max_calls = one_call_limit(tools, turn.parallel_tool_calls)
    stop = [*turn.stop, *chat.stop, *one_call_stops(chat.tool_markup, max_calls)]
    return Plan(prompt=prompt, tokens=tokenize(prompt, param=turn.prompt_param), tools=tools,
                grammar=grammar, answer_grammar=answer_grammar, budget=budget,
                thinks_from_start=inside, stop=tuple(dict.fromkeys(stop)),
                max_calls=max_calls)


def _plan_raw(chat: ChatFormatter, turn: RawTurn, tokenize: Tokenize) -> Plan:
    if isinstance(turn.prompt, str):
        text, tokens = turn.prompt, tokenize(turn.prompt, param=turn.prompt_param)
    elif turn.prompt and isinstance(turn.prompt[0], dict):
        # Content parts need the model's projector: api/core/media.py's plan_with_media.
        raise TypeError("a raw prompt with media is planned by plan_with_media")
    else:
        text, tokens = "", list(turn.prompt)  # type: ignore[arg-type]
    grammar = answer_grammar = response_format_grammar(turn.response_format)
    markup = chat.reasoning if turn.reasoning else None
    if grammar is not None and markup is not None and turn.thinking is not False:
        grammar = markup.think_first(grammar, False)  # free thinking first, then the answer
    return Plan(prompt=text, tokens=tokens, grammar=grammar, answer_grammar=answer_grammar,
                stop=tuple(dict.fromkeys(turn.stop)), reasoning=markup is not None)
