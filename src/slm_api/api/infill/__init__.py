"""llama-server's /infill (fill-in-the-middle for editors): one more adapter over the engine.

routes.py is HTTP only; protocol.py holds the request and reply with llama-server's field
names; serving.py builds the FIM prompt (api/core/infill.py) and shapes llama-server's reply.
"""
