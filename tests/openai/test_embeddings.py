"""Embeddings: normalised vectors, float and base64, related texts closer than unrelated."""

from __future__ import annotations

import base64
import math
import struct

from support.http_server import MODEL


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_related_sentences_score_higher(client):
    texts = [
        "The cat sat on the warm windowsill.",
        "A kitten was sleeping on the sunny window ledge.",
        "Quarterly revenue grew by twelve percent.",
    ]
    out = client.embeddings.create(model=MODEL, input=texts)
    vectors = [d.embedding for d in out.data]
    assert [d.index for d in out.data] == [0, 1, 2]
    for v in vectors:
        assert math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-3)
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[1], vectors[2])
    assert out.usage.prompt_tokens > 10


def test_base64_matches_float(client):
    as_float = client.embeddings.create(model=MODEL, input="hello world", encoding_format="float")
    as_b64 = client.embeddings.create(model=MODEL, input="hello world", encoding_format="base64")
    a = as_float.data[0].embedding
    raw = base64.b64decode(as_b64.data[0].embedding)
    b = struct.unpack(f"<{len(raw) // 4}f", raw)  # little-endian float32, as OpenAI sends
    assert len(a) == len(b) > 100
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-6


def test_token_input_and_errors(server):
    import requests

    r = requests.post(f"{server}/v1/embeddings", json={"input": [[2, 651, 6037]]}, timeout=30)
    assert r.status_code == 200 and len(r.json()["data"]) == 1
    r = requests.post(f"{server}/v1/embeddings", json={"input": ""}, timeout=30)
    assert r.status_code == 400
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == ("invalid_value", "input")
    r = requests.post(
        f"{server}/v1/embeddings", json={"input": ["x"], "encoding_format": "hex"}, timeout=30
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "encoding_format"
    assert r.json()["error"]["code"] == "invalid_value"
