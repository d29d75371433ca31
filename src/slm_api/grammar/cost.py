"""What a grammar built from a client's schema would cost to use, counted before it is used.

The limits are in limits.py; this module measures a grammar against them with the recognizer
(its rule costs are numbers, so the shortest output is known without writing it).
"""

from __future__ import annotations

from .errors import SchemaError
from .limits import MAX_REPEATS, MAX_SHORTEST_OUTPUT
from .recognizer import GrammarSyntaxError, GrammarTooLarge, compiled


def check_grammar(gbnf: str) -> None:
    """Raise SchemaError (400) when the grammar built from a schema expands past MAX_REPEATS or
    its shortest output passes MAX_SHORTEST_OUTPUT bytes. Both are counted, not built."""
    try:
        grammar = compiled(gbnf)
    except GrammarTooLarge:
        raise SchemaError("the schema's repetitions (minItems, maxItems, minLength, maxLength, "
                          "a pattern's {m,n}) expand its grammar to too many elements; the "
                          f"limit is {MAX_REPEATS}", param="schema",
                          code="schema_too_large") from None
    except GrammarSyntaxError:
        return  # a grammar the recognizer cannot read: llama.cpp has the last word on it
    shortest = grammar.shortest_bytes()
    if MAX_SHORTEST_OUTPUT < shortest < float("inf"):
        raise SchemaError(
            f"the shortest JSON this schema allows is {int(shortest)} bytes (nested minItems, "
            f"minLength and {{m,n}} counts multiply); the limit is {MAX_SHORTEST_OUTPUT}",
            param="schema", code="schema_too_large")
