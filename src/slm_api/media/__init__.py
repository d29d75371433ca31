"""Images and audio a request carries: checked and inlined at the request edge (inline.py,
remote.py), decoded for the model by the core (decode.py). Nothing here imports Flask."""
