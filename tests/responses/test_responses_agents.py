"""The OpenAI Agents SDK (`openai-agents`) running an agent with a function tool against this
server, through its default model: the Responses API."""

from __future__ import annotations

import asyncio

import pytest
from agents import (
    Agent,
    ModelSettings,
    Runner,
    function_tool,
    set_default_openai_client,
    set_tracing_disabled,
)
from openai import AsyncOpenAI
from pydantic import BaseModel, Field
from support.http_server import MODEL

CALLS: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    CALLS.append(city)
    return f"It is 18 degrees and sunny in {city}."


class Report(BaseModel):
    city: str = Field(max_length=30)
    summary: str = Field(max_length=60)


@pytest.fixture(scope="module")
def agent(server: str) -> Agent:
    set_tracing_disabled(True)
    set_default_openai_client(
        AsyncOpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0, timeout=120),
        use_for_tracing=False,
    )
    # The first turn must call the tool; the SDK then resets tool_choice so the agent answers,
    # as a Report (text.format json_schema: constrained decoding ends the answer).
    return Agent(name="Weather", instructions="Answer weather questions with the tool.",
                 model=MODEL, tools=[get_weather], output_type=Report,
                 model_settings=ModelSettings(tool_choice="required", temperature=0,
                                              max_tokens=80))


def test_agent_calls_the_tool_and_answers(agent):
    CALLS.clear()
    result = Runner.run_sync(agent, "What is the weather in Paris?", max_turns=4)
    assert len(CALLS) >= 1 and CALLS[0].strip()
    kinds = [item.type for item in result.new_items]
    assert kinds[:2] == ["tool_call_item", "tool_call_output_item"]
    assert kinds[-1] == "message_output_item"
    assert isinstance(result.final_output, Report)
    assert all(r.usage.output_tokens > 0 for r in result.raw_responses)


def test_streamed_agent_run(agent):
    CALLS.clear()

    async def run() -> tuple[list[str], object]:
        streamed = Runner.run_streamed(agent, "Weather in Rome?", max_turns=4)
        kinds = [event.type async for event in streamed.stream_events()]
        return kinds, streamed.final_output

    kinds, final = asyncio.run(run())
    assert CALLS and "raw_response_event" in kinds and "run_item_stream_event" in kinds
    assert isinstance(final, Report)
