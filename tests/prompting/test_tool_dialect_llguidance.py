"""The forced-call grammars of Qwen3-Coder's and GPT-OSS's markups in the engines that run
them: llguidance (the server's default) and llama.cpp's grammar sampler, walked token by token
over the default model's vocabulary (tests/support/grammar_engine.py), as tests/grammar/ does."""

from __future__ import annotations

import pytest
from support.grammar_engine import GrammarEngine, MaskEngine
from test_tool_dialect_markups import (
    GPT_OSS_TEMPLATE,
    HARMONY_CALL,
    QWEN_BAD,
    QWEN_GOOD,
    TIME,
    WEATHER,
    formatter,
)

from slm_api.prompting.tool_markup import HARMONY, QWEN3_CODER

FNS = [WEATHER["function"], TIME["function"]]


@pytest.fixture(scope="module")
def engines(model_path):
    grammars = GrammarEngine(model_path)
    masks = MaskEngine(grammars)
    yield {"llguidance": masks, "llama.cpp": grammars}
    masks.close()
    grammars.close()


@pytest.mark.parametrize("backend", ["llguidance", "llama.cpp"])
def test_qwen3_coder_call_grammar(engines, backend):
    engine = engines[backend]
    grammar = QWEN3_CODER.grammar(FNS)
    assert engine.accepts(grammar, QWEN_GOOD)
    for bad in QWEN_BAD:
        assert not engine.accepts(grammar, bad), bad


@pytest.mark.parametrize("backend", ["llguidance", "llama.cpp"])
def test_harmony_call_grammar_after_free_analysis(engines, backend):
    engine = engines[backend]
    grammar = formatter(GPT_OSS_TEMPLATE).reasoning.think_first(HARMONY.grammar(FNS), False)
    call = HARMONY_CALL.removeprefix("<|start|>assistant")
    thought = "<|channel|>analysis<|message|>Call it.<|end|><|start|>assistant"
    assert engine.accepts(grammar, call)
    assert engine.accepts(grammar, thought + call)
    assert not engine.accepts(grammar, thought + "<|channel|>final<|message|>Hi")
    assert not engine.accepts(grammar, call.replace('"celsius"', '"kelvin"'))
