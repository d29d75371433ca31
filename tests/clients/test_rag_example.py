"""docs/examples/rag_langchain.py against a real server: LangChain's OpenAIEmbeddings on the
default embedding model, retrieval, and an answer from the chat model."""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, embedded_model
from support.http_server import make_settings, running_server

from slm_api.config import MINILM_MODEL_FILE

pytest.importorskip("langchain_openai")


def _example():
    spec = importlib.util.spec_from_file_location(
        "rag_langchain", REPO / "docs" / "examples" / "rag_langchain.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def url(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("models-rag")
    for path in (model_path, embedded_model(MINILM_MODEL_FILE)):
        os.link(path, folder / path.name)
    with running_server(make_settings(folder)) as base:
        yield base


def test_langchain_openai_embeddings_on_the_default_model(url: str) -> None:
    from langchain_openai import OpenAIEmbeddings

    emb = OpenAIEmbeddings(base_url=f"{url}/v1", api_key="unused", model="all-minilm-l6-v2",
                           check_embedding_ctx_length=False)
    docs = emb.embed_documents(["hello world", "goodbye moon", "a third text"])
    query = emb.embed_query("hello world")
    assert len(docs) == 3 and all(len(v) == 384 for v in docs)
    assert math.isclose(sum(x * x for x in query), 1.0, rel_tol=1e-3)
    assert max(abs(a - b) for a, b in zip(query, docs[0], strict=True)) < 1e-4


def test_the_rag_example_retrieves_and_answers(url: str) -> None:
    rag = _example()
    text, used = rag.answer(url, "In which city is the Eiffel Tower?")
    assert "Eiffel" in used[0]
    assert "paris" in text.lower(), text
    _, used = rag.answer(url, "Which is the tallest mountain in the world?")
    assert "Everest" in used[0]


try:
    from langchain_tests.integration_tests import EmbeddingsIntegrationTests
except ImportError:  # the dev extras name it; a plain install still runs the tests above
    EmbeddingsIntegrationTests = object  # type: ignore[assignment,misc]


@pytest.mark.skipif(EmbeddingsIntegrationTests is object, reason="langchain-tests not installed")
@pytest.mark.anyio  # runs the suite's async tests (anyio's plugin; it leaves the sync ones be)
class TestLangChainStandardEmbeddings(EmbeddingsIntegrationTests):
    """LangChain's own standard suite for an embeddings integration, run on OpenAIEmbeddings
    pointed at the default embedding model: what a LangChain user's vector store relies on."""

    @property
    def embeddings_class(self) -> type:
        from langchain_openai import OpenAIEmbeddings

        return OpenAIEmbeddings

    @pytest.fixture
    def model(self, url: str):
        # check_embedding_ctx_length=False: otherwise the client tokenizes with tiktoken's
        # OpenAI vocabulary (a download) and sends token ids meant for OpenAI's models.
        return self.embeddings_class(base_url=f"{url}/v1", api_key="unused",
                                     model="all-minilm-l6-v2", check_embedding_ctx_length=False)
