"""The package layout is the architecture: pure code stays importable without llama.cpp."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    ["slm_api.grammar", "slm_api.prompting.chat_format", "slm_api.prompting.tool_calls",
     "slm_api.prompting.tool_markup", "slm_api.prompting.tool_stream",
     "slm_api.prompting.stops", "slm_api.gguf_info", "slm_api.errors",
     "slm_api.models_fetch.bert_gguf", "slm_api.default_model"],
)
def test_pure_modules_do_not_import_llama_cpp(module: str) -> None:
    code = f"import sys, {module}; print('llama_cpp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", f"{module} pulls in llama_cpp"


def test_every_error_derives_from_one_base() -> None:
    from slm_api import errors, hub
    from slm_api.grammar import SchemaError

    for cls in (errors.APIError, errors.EngineError, hub.DownloadError, SchemaError):
        assert issubclass(cls, errors.SlmError)
    assert not issubclass(hub.DownloadError, errors.EngineError)
