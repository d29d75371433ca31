"""Retrieval-augmented answering against slm-api with LangChain's OpenAI classes: embed the
passages (all-MiniLM-L6-v2, the default embedding model), keep them in a list, rank by cosine,
optionally rerank with /v1/rerank, then answer with the chat model from the best passages.

    pip install langchain-openai
    python docs/examples/rag_langchain.py http://127.0.0.1:8000 "Where is the Eiffel Tower?"

Run by tests/clients/test_rag_example.py.
"""

from __future__ import annotations

import sys

import requests
from langchain_openai import ChatOpenAI, OpenAIEmbeddings

PASSAGES = [
    "The Eiffel Tower is a wrought-iron tower in Paris, finished in 1889.",
    "The Colosseum is an ancient amphitheatre in the centre of Rome.",
    "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar.",
    "Mount Everest, on the border of Nepal and China, is the highest mountain on Earth.",
    "Big Ben is the nickname of the great bell of the clock tower in London.",
    "The Great Barrier Reef lies off the coast of Queensland, Australia.",
]


class Index:
    """Passages and their vectors in a list: enough for a few thousand passages."""

    def __init__(self, base_url: str, passages: list[str]):
        # check_embedding_ctx_length=False: send the text itself (the server tokenizes), not
        # tiktoken ids that only OpenAI's own models understand.
        self.embeddings = OpenAIEmbeddings(base_url=f"{base_url}/v1", api_key="unused",
                                           model="all-minilm-l6-v2",
                                           check_embedding_ctx_length=False)
        self.passages = passages
        self.vectors = self.embeddings.embed_documents(passages)

    def search(self, question: str, k: int = 3) -> list[str]:
        q = self.embeddings.embed_query(question)
        scores = [sum(a * b for a, b in zip(q, v, strict=True)) for v in self.vectors]  # unit
        best = sorted(range(len(scores)), key=lambda i: -scores[i])[:k]
        return [self.passages[i] for i in best]


def rerank(base_url: str, model: str, question: str, passages: list[str]) -> list[str]:
    r = requests.post(f"{base_url}/v1/rerank", json={"model": model, "query": question,
                                                      "documents": passages}, timeout=60)
    r.raise_for_status()
    return [passages[x["index"]] for x in r.json()["results"]]


def answer(base_url: str, question: str, *, chat_model: str = "smollm2-135m-instruct-q4_1",
           reranker: str | None = None) -> tuple[str, list[str]]:
    """(the chat model's answer, the passages it was given, best first)."""
    found = Index(base_url, PASSAGES).search(question)
    if reranker:
        found = rerank(base_url, reranker, question, found)
    llm = ChatOpenAI(base_url=f"{base_url}/v1", api_key="unused", model=chat_model,
                     temperature=0, max_tokens=48)
    context = "\n".join(f"- {p}" for p in found[:2])
    reply = llm.invoke([("system", "Answer in one short sentence using only the context."),
                        ("user", f"Context:\n{context}\n\nQuestion: {question}")])
    return str(reply.content), found


if __name__ == "__main__":
    text, used = answer(sys.argv[1], sys.argv[2])
    print("\n".join(used[:2]))
    print(text)
