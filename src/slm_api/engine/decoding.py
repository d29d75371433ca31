"""One generation's decode state: what the loop thread keeps between steps for a sequence
(sampler, grammar guide, forced tokens, drafts, text assembly, the tokens not yet sent). The
Job around it is only the channel to the HTTP thread."""

from __future__ import annotations

from slm_api.engine.lookup import PromptLookup
from slm_api.engine.sampling import Sampler
from slm_api.engine.types import Chunk, TokenLogprob
from slm_api.grammar.budget import BudgetGuide
from slm_api.prompting.stops import TextAssembler


class Decoding:
    """Read and written by the loop thread only."""

    def __init__(self, sampler: Sampler | None, stop: list[str], *,
                 guide: BudgetGuide | None = None, fast_forward: bool = False,
                 lookup: PromptLookup | None = None):
        self.sampler = sampler  # None: only fill the cache with the prompt (warm-up)
        self.guide = guide  # a constrained generation's closing planner
        self.fast_forward = fast_forward  # append tokens the grammar forces without sampling
        self.ff_queue: list[int] = []  # forced tokens still to append, last first
        self.fast_forwarded = 0
        self.lookup = lookup  # drafts from the prompt (speculation on)
        self.text = TextAssembler(stop)
        self.first_token_at: float | None = None
        self.generated = 0
        self.pending_ids: list[int] = []
        self.pending_logprobs: list[TokenLogprob] = []

    def chunk(self, text: str) -> Chunk:
        """`text` with the tokens (and their logprobs) sampled since the last chunk: a token
        whose text is held back (half a character, a possible stop string) rides along with
        the next one, so every token reaches the client once."""
        chunk = Chunk(text, tuple(self.pending_ids), tuple(self.pending_logprobs))
        self.pending_ids.clear()
        self.pending_logprobs.clear()
        return chunk

    def close(self) -> None:
        if self.sampler is not None:
            self.sampler.close()
