"""Ollama's API (/api/...): one more adapter over the conversation core.

routes.py is HTTP only; protocol.py holds the request and reply models with Ollama's field
names; serving.py maps them onto the core (api/core/conversation.py, run.py, structured.py);
models.py names and describes GGUF files as Ollama does (`name:tag`, details, model_info).
"""
