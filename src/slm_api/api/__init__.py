"""The HTTP API: one package per family, each with the same parts.

    core/       the shared conversation core every family adapts to (docs/architecture.md)
    openai/     /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models
    responses/  /v1/responses and its SQLite store
    anthropic/  /v1/messages (Anthropic Messages) and its error envelope
    extract/    /v1/extract
    admin/      the server's own routes: admin, /extras, /health, /ready, /docs, /openapi.json
    ollama/     (next) Ollama's /api/* routes
    rerank/     (next) reranking

A family holds `routes.py` (HTTP only), `protocol.py` (its wire format's typed models) and,
where it has logic of its own, `serving.py`. It imports core/ and plumbing/, never another
family (tests/test_layering.py).
"""
