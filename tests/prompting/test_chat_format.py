"""Prompt formats: choosing one, rendering messages and tools, the Jinja sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slm_api.errors import InvalidRequest
from slm_api.prompting.chat_format import (
    FORMAT_NAMES,
    ChatFormatter,
    formatter_for,
    normalize_messages,
)

GEMMA_MD = {
    "general.architecture": "gemma3",
    "tokenizer.ggml.model": "llama",
    "tokenizer.ggml.add_bos_token": "true",
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
TOOL_HISTORY = [
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
]
CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "Bye"},
]


def gemma() -> ChatFormatter:
    return formatter_for(GEMMA_MD, bos="<bos>", eos="<eos>")


# -- the real embedded models ----------------------------------------------------------------


def gguf_metadata(path: Path) -> dict[str, str]:
    """Scalar metadata as text, the way llama.cpp reports it (arrays left out, as it does)."""
    from gguf import GGUFReader
    from gguf.constants import GGUFValueType

    out = {}
    for key, field in GGUFReader(str(path)).fields.items():
        if not field.types or field.types[0] == GGUFValueType.ARRAY:
            continue
        value = field.contents()
        out[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


@pytest.fixture(scope="module")
def real_metadata(gemma_path: Path) -> dict[str, str]:
    return gguf_metadata(gemma_path)


def test_gemma_has_no_template_and_gets_gemma_turns(real_metadata: dict[str, str]):
    assert "tokenizer.chat_template" not in real_metadata
    assert real_metadata["general.architecture"] == "gemma3"
    fmt = formatter_for(real_metadata, bos="<bos>", eos="<eos>")
    assert fmt.name == "gemma"
    assert fmt.stop == ("<end_of_turn>",)
    prompt = fmt.render(
        [
            {"role": "system", "content": "Answer in one word."},
            {"role": "user", "content": "What is the capital of France?"},
        ]
    )
    assert prompt == (
        "<start_of_turn>user\nAnswer in one word.\n\nWhat is the capital of France?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )
    assert "[INST]" not in prompt


def test_gemma_tokenizes_prompt_with_exactly_one_bos(gemma_path: Path):
    # The real tokenizer, as the engine calls it (add_special=True, parse_special=True).
    from llama_cpp import Llama

    llm = Llama(str(gemma_path), vocab_only=True, verbose=False)
    bos = llm.detokenize([llm.token_bos()], special=True).decode()
    fmt = formatter_for(llm.metadata, bos=bos, eos="<eos>")
    prompt = fmt.render([{"role": "user", "content": "What is the capital of France?"}])
    tokens = llm.tokenize(prompt.encode(), add_bos=True, special=True)
    assert tokens[0] == llm.token_bos()
    assert tokens.count(llm.token_bos()) == 1
    # The turn markers are single special tokens, not spelled out as text.
    start = llm.tokenize(b"<start_of_turn>", add_bos=False, special=True)
    assert len(start) == 1 and tokens[1] == start[0]


def test_smollm2_template_from_metadata_renders_chatml(smollm2_path: Path):
    # The Jinja path on a real file: SmolLM2's own template, ChatML with its default system turn.
    metadata = gguf_metadata(smollm2_path)
    assert metadata["general.architecture"] == "llama"
    fmt = formatter_for(metadata, bos="<|im_start|>", eos="<|im_end|>")
    assert fmt.name == "jinja"
    assert fmt.stop == ("<|im_end|>",)
    assert fmt.render([{"role": "user", "content": "What is 2+2?"}]) == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
        "<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    )
    # A system message of the caller's replaces the template's default one.
    prompt = fmt.render(CHAT)
    assert prompt.startswith("<|im_start|>system\nBe brief.<|im_end|>\n")
    assert prompt.count("<|im_start|>system") == 1


def test_smollm2_prompt_has_no_bos_and_single_token_turn_markers(smollm2_path: Path):
    from llama_cpp import Llama

    llm = Llama(str(smollm2_path), vocab_only=True, verbose=False)
    fmt = formatter_for(llm.metadata, bos="<|im_start|>", eos="<|im_end|>")
    prompt = fmt.render([{"role": "user", "content": "Hi"}])
    tokens = llm.tokenize(prompt.encode(), add_bos=True, special=True)
    start, end = (llm.tokenize(m.encode(), add_bos=False, special=True)
                  for m in ("<|im_start|>", "<|im_end|>"))
    assert len(start) == 1 and len(end) == 1
    # add_bos_token is false in this vocabulary: the prompt starts with the turn marker itself.
    assert tokens[0] == start[0]
    assert tokens.count(start[0]) == 3 and tokens.count(end[0]) == 2
    assert llm.token_eos() == end[0]


# -- choosing a format ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "name"),
    [
        ({"general.architecture": "gemma"}, "gemma"),
        ({"general.architecture": "gemma2"}, "gemma"),
        ({"general.architecture": "qwen2"}, "chatml"),
        ({"general.architecture": "qwen3"}, "chatml"),
        ({"general.architecture": "phi3"}, "phi-3"),
        ({"general.architecture": "mistral"}, "mistral"),
        ({"general.architecture": "llama", "tokenizer.ggml.model": "llama"}, "llama-2"),
        (
            {"general.architecture": "llama", "tokenizer.ggml.model": "gpt2",
             "tokenizer.ggml.pre": "llama-bpe"},
            "llama-3",
        ),
    ],
)
def test_format_by_architecture(metadata: dict[str, str], name: str):
    assert formatter_for(metadata).name == name


def test_llama_special_token_hint_picks_llama3():
    md = {"general.architecture": "llama", "tokenizer.ggml.model": "llama"}
    assert formatter_for(md, special_tokens={"<|start_header_id|>"}).name == "llama-3"


def test_llama_architecture_with_other_bpe_vocab_is_not_guessed():
    # e.g. SmolLM: llama architecture, GPT-2 style BPE, neither Llama 2 nor Llama 3 turns.
    md = {"general.architecture": "llama", "tokenizer.ggml.model": "gpt2",
          "tokenizer.ggml.pre": "smollm"}
    with pytest.raises(ValueError, match="CHAT_FORMAT"):
        formatter_for(md)
    # An early Llama 3 conversion without a pre-tokenizer name, known by its vocabulary size.
    md = {"general.architecture": "llama", "tokenizer.ggml.model": "gpt2",
          "llama.vocab_size": "128256"}
    assert formatter_for(md).name == "llama-3"


def test_unknown_architecture_without_template_is_an_error():
    with pytest.raises(ValueError, match="CHAT_FORMAT"):
        formatter_for({"general.architecture": "mamba"})
    with pytest.raises(ValueError):
        formatter_for({})
    assert formatter_for({"general.architecture": "mamba"}, "chatml").name == "chatml"


def test_override_wins_over_architecture_and_template():
    md = {**GEMMA_MD, "tokenizer.chat_template": "{{ messages[0]['content'] }}"}
    assert formatter_for(md).name == "jinja"
    assert formatter_for(md, "chatml").name == "chatml"
    assert formatter_for(GEMMA_MD, "Llama_2").name == "llama-2"
    assert formatter_for(GEMMA_MD, "auto").name == "gemma"
    assert formatter_for(md, "jinja").name == "jinja"


def test_unknown_override_lists_valid_names():
    with pytest.raises(ValueError) as err:
        formatter_for(GEMMA_MD, "vicuna")
    for name in FORMAT_NAMES:
        assert name in str(err.value)


def test_jinja_override_needs_a_template():
    with pytest.raises(ValueError, match="no tokenizer.chat_template"):
        formatter_for(GEMMA_MD, "jinja")


# -- Gemma ---------------------------------------------------------------------------------


def test_gemma_conversation():
    assert gemma().render(CHAT) == (
        "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello.<end_of_turn>\n"
        "<start_of_turn>user\nBye<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_gemma_without_generation_prompt_ends_after_last_turn():
    assert gemma().render(CHAT[:3], add_generation_prompt=False).endswith(
        "<start_of_turn>model\nHello.<end_of_turn>\n"
    )


def test_gemma_system_only_becomes_user_turn():
    prompt = gemma().render([{"role": "system", "content": "You are a pirate."}])
    assert prompt == (
        "<start_of_turn>user\nYou are a pirate.<end_of_turn>\n<start_of_turn>model\n"
    )


def test_gemma_multiple_system_and_consecutive_users_are_merged():
    prompt = gemma().render(
        [
            {"role": "system", "content": "Rule one."},
            {"role": "developer", "content": "Rule two."},
            {"role": "user", "content": "A"},
            {"role": "user", "content": "B"},
        ]
    )
    assert prompt == (
        "<start_of_turn>user\nRule one.\n\nRule two.\n\nA\n\nB<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_gemma_later_system_message_joins_the_next_user_turn():
    prompt = gemma().render(
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "system", "content": "Now answer in French."},
            {"role": "user", "content": "Bye"},
        ]
    )
    assert prompt.endswith(
        "<start_of_turn>user\nNow answer in French.\n\nBye<end_of_turn>\n<start_of_turn>model\n"
    )
    assert prompt.count("<start_of_turn>user") == 2


def test_gemma_writes_bos_only_when_tokenizer_does_not():
    md = {**GEMMA_MD, "tokenizer.ggml.add_bos_token": "false"}
    assert formatter_for(md, bos="<bos>").render(CHAT).startswith("<bos><start_of_turn>user")
    assert formatter_for(GEMMA_MD, bos="<bos>").render(CHAT).startswith("<start_of_turn>user")
    assert formatter_for(GEMMA_MD, add_bos=False).render(CHAT).startswith("<bos>")


def test_content_parts_are_joined():
    prompt = gemma().render(
        [{"role": "user", "content": [{"type": "text", "text": "one"},
                                      {"type": "text", "text": "two"}]}]
    )
    assert "<start_of_turn>user\none\ntwo<end_of_turn>" in prompt


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
        [{"role": "user", "content": [{"type": "text"}]}],
        [{"role": "user", "content": 5}],
        [{"role": "wizard", "content": "hi"}],
        [{"role": ["user"], "content": "hi"}],
        [{"content": "hi"}],
        ["hi"],
        [],
        [{"role": "assistant", "content": "", "tool_calls": "nope"}],
    ],
)
def test_bad_messages_are_invalid_requests(messages: list):
    with pytest.raises(InvalidRequest) as err:
        gemma().render(messages)
    assert err.value.param == "messages" and err.value.status == 400


def test_image_part_error_says_text_only():
    with pytest.raises(InvalidRequest, match="text only"):
        normalize_messages([{"role": "user", "content": [{"type": "image_url"}]}])


# -- other built-in formats ----------------------------------------------------------------


def test_builtin_formats_render_exactly():
    md = {"general.architecture": "x", "tokenizer.ggml.add_bos_token": "true"}
    expected = {
        "chatml": "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
        "<|im_start|>assistant\n",
        "llama-3": "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "llama-2": "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello. </s>"
        "<s>[INST] Bye [/INST]",
        "mistral": "[INST] Be brief.\n\nHi [/INST] Hello.</s>[INST] Bye [/INST]",
        "phi-3": "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello.<|end|>\n"
        "<|user|>\nBye<|end|>\n<|assistant|>\n",
    }
    for name, text in expected.items():
        assert formatter_for(md, name).render(CHAT) == text, name


def test_stop_strings_per_format():
    assert formatter_for(GEMMA_MD, "chatml").stop == ("<|im_end|>",)
    assert "<|eot_id|>" in formatter_for(GEMMA_MD, "llama-3").stop
    assert "<|end|>" in formatter_for(GEMMA_MD, "phi-3").stop


# -- tools in built-in formats -------------------------------------------------------------


def test_tools_are_injected_into_gemma_first_user_turn():
    prompt = gemma().render(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather?"}],
        tools=TOOLS,
    )
    first_turn = prompt.split("<end_of_turn>")[0]
    assert first_turn.startswith("<start_of_turn>user\nBe brief.\n\n# Tools")
    block = first_turn.split("<tools>\n")[1].split("\n</tools>")[0]
    assert json.loads(block) == TOOLS[0]
    assert "<tool_call>" in first_turn
    assert first_turn.endswith("Weather?")


def test_tool_history_renders_calls_and_responses():
    prompt = gemma().render(TOOL_HISTORY, tools=TOOLS)
    assert (
        '<start_of_turn>model\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}'
        "\n</tool_call><end_of_turn>\n"
    ) in prompt
    assert (
        "<start_of_turn>user\n<tool_response>\n18C, sunny\n</tool_response><end_of_turn>\n"
        "<start_of_turn>model\n"
    ) in prompt


def test_consecutive_tool_results_share_one_turn_in_chatml():
    msgs = [*TOOL_HISTORY, {"role": "tool", "tool_call_id": "call_2", "content": "rain"}]
    prompt = formatter_for(GEMMA_MD, "chatml").render(msgs)
    assert (
        "<|im_start|>user\n<tool_response>\n18C, sunny\n</tool_response>\n\n"
        "<tool_response>\nrain\n</tool_response><|im_end|>"
    ) in prompt
    assert "# Tools" not in prompt  # no tools given: no tools block


def test_tool_choice_none_leaves_tools_out():
    prompt = gemma().render([{"role": "user", "content": "Hi"}], tools=TOOLS, tool_choice="none")
    assert "<tools>" not in prompt and "get_weather" not in prompt


def test_bad_tool_definition_is_invalid_request():
    with pytest.raises(InvalidRequest) as err:
        gemma().render([{"role": "user", "content": "Hi"}], tools=[{"type": "function"}])
    assert err.value.param == "tools"
