"""A thinking budget: at most so many tokens of thinking, then the server closes the block and
the answer starts (what keeps a small reasoning model from thinking in circles).

Two generations in a row, read as one: the first thinks, unconstrained, until the model closes
the block itself (its closing marker is a stop string) or the budget is spent; the second starts
from the prompt, the thinking and the closing marker the server writes, with the answer's own
grammar if the request has one. With a grammar the first one already follows it (free thinking,
the marker, the answer: ReasoningMarkup.think_first), so the budget guide closes the thinking in
time for a valid answer within max_tokens. The closing marker is streamed as text between them,
so the reply splitter sees the same markup as if the model had written it. max_tokens counts all
of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from slm_api.engine import Chunk, FinishCause, Finished, Generation, GenerationRequest
from slm_api.engine.llama_model import LoadedModel
from slm_api.prompting.reasoning import ReasoningMarkup


class BudgetedGeneration:
    """The Generation protocol over the two: iterate for chunks, `result` once it ended."""

    def __init__(self, model: LoadedModel, req: GenerationRequest, budget: int,
                 markup: ReasoningMarkup, answer_grammar: str | None):
        self.model, self.req, self.markup = model, req, markup
        self.budget = budget
        self.answer_grammar = answer_grammar
        self.result: Finished | None = None
        self._current: Generation | None = None
        self._aborted = False

    def __iter__(self) -> Iterator[Chunk]:
        req, close = self.req, self.markup.close
        grammar = self.answer_grammar
        first = self._submit(replace(
            req, max_tokens=min(self.budget, req.max_tokens), stop=(*req.stop, close),
            sampling=replace(req.sampling, grammar=grammar and self.markup.think_first(
                grammar, inside=True))))
        thought = []
        for chunk in first:
            thought.append(chunk.text)
            yield chunk
        done = first.result
        self.result = done
        if done is None or self._aborted:
            return
        closed = done.stop_sequence == close
        if not closed and (done.cause is not FinishCause.MAX_TOKENS
                           or done.completion_tokens >= req.max_tokens):
            return  # the reply ended inside the thinking: end of turn, or max_tokens
        text = "".join(thought)
        # The marker the model wrote (its tokens are counted already; the stop string only kept
        # it out of the text), or the server's, and the blank line before the answer. With a
        # grammar the model always closes (the budget guide leaves the answer exactly its
        # room): nothing is added then.
        if closed:
            written, n_written = close, 0
        else:
            written = ("" if text.endswith("\n") else "\n") + close + self.markup.after
            n_written = len(self._tokens(written))
        yield Chunk(text=written)
        left = req.max_tokens - done.completion_tokens - n_written
        if left <= 0:
            self.result = replace(done, cause=FinishCause.MAX_TOKENS, stop_sequence=None,
                                  completion_tokens=done.completion_tokens + n_written)
            return
        second = self._submit(replace(
            req, prompt=[*req.prompt, *self._tokens(text + written)], max_tokens=left,
            sampling=replace(req.sampling, grammar=self.answer_grammar)))
        yield from second
        end = second.result
        if end is not None:
            self.result = Finished(
                end.cause, done.prompt_tokens,
                done.completion_tokens + n_written + end.completion_tokens, done.cached_tokens,
                done.time_to_first_token_s, end.stop_sequence)

    def _submit(self, req: GenerationRequest) -> Generation:
        self._current = self.model.submit(req)
        return self._current

    def _tokens(self, text: str) -> list[int]:
        return self.model.tokenize(text, add_special=False, param=None)

    def abort(self) -> None:
        self._aborted = True
        if self._current is not None:
            self._current.abort()


class OneChoice:
    """A single generation read as a Choices stream of one ((0, Chunk), then (0, Finished))."""

    def __init__(self, generation: BudgetedGeneration):
        self.generation = generation
        self.jobs = [generation]
        self.results: list[Finished | None] = [None]
        self.result: Finished | None = None

    def __iter__(self) -> Iterator[tuple[int, Chunk | Finished]]:
        for chunk in self.generation:
            yield 0, chunk
        self.result = self.results[0] = self.generation.result
        if self.result is not None:
            yield 0, self.result

    def abort(self) -> None:
        self.generation.abort()
