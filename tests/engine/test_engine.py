"""The engine on the real default model: batching, caching, aborts, limits."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from slm_api.config import Settings
from slm_api.engine import (
    FinishCause,
    GenerationRequest,
    InvalidRequest,
    LoadOptions,
    QueueFull,
    SamplingParams,
)
from slm_api.engine.llama_model import LoadedModel
from slm_api.engine.slots import common_prefix
from slm_api.prompting.chat_format import ChatFormatter
from slm_api.prompting.stops import TextAssembler

GREEDY = SamplingParams(temperature=0)
TOPICS = ["rivers", "bread", "chess", "volcanoes", "owls", "trains", "tea", "glass"]


_CHAT: list[ChatFormatter] = []  # the default model's own prompt format, set once per module


def turn(text: str) -> str:
    """`text` as a user turn in the model's own format (the server's formatter for it)."""
    return _CHAT[0].render([{"role": "user", "content": text}])


def load(model_path: Path, tmp_path: Path, **overrides) -> LoadedModel:
    settings = Settings(**{"models_dir": model_path.parent, "n_threads": 2, "n_ctx": 1024,
                           "cache_dir": tmp_path / "cache", **overrides})
    return LoadedModel.load(model_path, settings, LoadOptions())


def generate(model: LoadedModel, prompt: str, max_tokens: int = 16, **kw):
    gen = model.submit(GenerationRequest(prompt=model.tokenize(prompt), max_tokens=max_tokens,
                                         sampling=kw.pop("sampling", GREEDY), **kw))
    text = "".join(c.text for c in gen)
    return text, gen.result


@pytest.fixture(scope="module")
def batched(model_path: Path, tmp_path_factory: pytest.TempPathFactory):
    model = load(model_path, tmp_path_factory.mktemp("engine"), n_parallel=8)
    yield model
    model.close()


def traced_run(model: LoadedModel, prompt: str, n: int = 16):
    """Greedy token ids, the two best (token, logprob) pairs at each step, and the result."""
    gen = model.submit(GenerationRequest(prompt=model.tokenize(prompt), max_tokens=n,
                                         sampling=SamplingParams(temperature=0, n_probs=2)))
    ids, tops = [], []
    for chunk in gen:
        ids.extend(chunk.token_ids)
        tops.extend(lp.top for lp in chunk.logprobs)
    return ids, tops, gen.result


def greedy_run(model: LoadedModel, prompt: str, n: int = 16):
    """Greedy token ids, the top-two logprob gap at each step, and the result."""
    ids, tops, result = traced_run(model, prompt, n)
    return ids, [top[0][1] - top[1][1] for top in tops], result


def cold_greedy_run(model_path: Path, tmp_path: Path, prompt: str):
    """greedy_run on a model of its own with no prompt cache at all, whatever ran before: the
    reference a cached or copied prefix must agree with."""
    model = load(model_path, tmp_path, n_parallel=1, prompt_cache="off")
    try:
        return greedy_run(model, prompt)
    finally:
        model.close()


def agree_until_near_tie(ids: list[int], margins: list[float], other: list[int]) -> int:
    """How many leading tokens the two runs share; asserts that they part, if at all, only at a
    step where `ids`' run had its two best tokens within 1 nat (see the test below for why a
    near-tie may let two correct runs part). So both agree at least up to the first near-tie."""
    n = min(len(ids), len(other))
    part = next((k for k in range(n) if ids[k] != other[k]), n)
    if part < len(margins) and (part < n or len(ids) != len(other)):
        assert margins[part] < 1.0, f"parted at token {part} with a {margins[part]:.2f} nat gap"
    return part


@pytest.fixture(scope="module", autouse=True)
def _model_format(batched) -> None:
    _CHAT[:] = [batched.chat]


def test_concurrent_greedy_requests_match_their_solo_output(batched):
    """Batched and solo decoding use different matrix kernels (a batch of one takes the
    matrix-vector path), so logits differ by rounding: measured here, the gap between the two
    best tokens moves by up to ~0.5 nats between a solo and an 8-way batched run. Greedy outputs
    must agree token for token up to the first step whose top-two gap is within that noise
    (under 1 nat); a small model soon reaches near-tied logits, which is where solo and batched
    runs may part."""
    prompts = [turn(f"Tell me about {t}.") for t in TOPICS]
    solo = [greedy_run(batched, p, 24)[:2] for p in prompts]
    together: list = [None] * len(prompts)

    def run(i: int) -> None:
        together[i] = greedy_run(batched, prompts[i], 24)[0]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    compared = sum(agree_until_near_tie(ids, margins, batched_ids)
                   for (ids, margins), batched_ids in zip(solo, together, strict=True))
    assert compared >= 16  # the check compared real stretches, not only near-ties


def test_a_shared_prefix_is_reused(batched, model_path, tmp_path):
    system = "You are a careful assistant. " * 40
    prompt = turn(system + "Name a colour.")
    cold_ids, cold_margins, cold = cold_greedy_run(model_path, tmp_path, prompt)
    assert cold.cached_tokens == 0 and cold.prompt_tokens > 200

    fruit = turn(system + "Name a fruit.")
    greedy_run(batched, fruit)
    assert greedy_run(batched, fruit)[2].cached_tokens == len(batched.tokenize(fruit))
    warm_ids, _, warm = greedy_run(batched, prompt)
    # Everything up to where the two questions part is reused, only the rest is evaluated.
    assert warm.cached_tokens == common_prefix(batched.tokenize(fruit), batched.tokenize(prompt))
    assert agree_until_near_tie(cold_ids, cold_margins, warm_ids) >= 4


def test_a_repeated_prompt_answers_exactly_as_the_first_time(batched):
    """The logits after a prompt's last token are kept with its cache, so the same prompt again
    reads nothing and samples from those very logits: the same tokens with the same logprobs,
    bit for bit. Re-reading the last token alone (a 1-row batch, another matrix kernel) moves
    the logits by up to 0.2 nats on this model, which is what this test catches."""
    prompt = turn("The harbour log lists ships, cargo and tides, day by day. " * 12 + "Sum up.")
    first_ids, first_tops, first = traced_run(batched, prompt)
    again_ids, again_tops, again = traced_run(batched, prompt)
    assert first.cached_tokens < 50 < 150 < first.prompt_tokens  # a template prefix at most
    assert again.cached_tokens == again.prompt_tokens == first.prompt_tokens
    assert again_ids == first_ids
    assert again_tops[0] == first_tops[0]  # same logits, not merely the same argmax


def test_a_running_sequence_lends_its_prefix(batched, model_path, tmp_path):
    """A request whose prefix another sequence holds while still generating starts from a copy
    of that sequence's KV stream, trimmed to the shared prefix: it evaluates only its own tail,
    and answers as a request that read its whole prompt does."""
    system = "You are a terse assistant who answers in one line. " * 30
    question = turn(system + "Name a large animal.")
    cold_ids, cold_margins, _ = cold_greedy_run(model_path, tmp_path, question)

    story = batched.submit(GenerationRequest(
        prompt=batched.tokenize(turn(system + "Tell a long story.")), max_tokens=200,
        sampling=SamplingParams(temperature=0.8, seed=3, logit_bias={
            t: -100.0 for t in range(batched.n_vocab)
            if batched._scheduler._committer._is_eog(t)})))
    chunks = iter(story)
    next(chunks)  # the story has read its prompt and is generating
    warm_ids, _, warm = greedy_run(batched, question)
    assert story.result is None, "the lender finished before the copy: nothing was tested"
    for _ in chunks:
        pass
    shared = common_prefix(batched.tokenize(turn(system + "Tell a long story.")),
                           batched.tokenize(question))
    assert shared > 200 and warm.cached_tokens == shared
    assert agree_until_near_tie(cold_ids, cold_margins, warm_ids) >= 4
    assert story.result.completion_tokens == 200


def test_eight_copies_in_one_batch_give_identical_outputs(batched):
    """Copies of one prompt decoded row beside row agree token for token up to the first
    near-tie: where each sequence's cells sit in the shared KV pool changes the rounding of its
    attention sums (measured: copies in odd and even sequences part at a 0.1-nat tie, with or
    without prompt-lookup drafts), which is noise, not one sequence reading another's cells."""
    prompt = batched.tokenize(turn("Describe a lighthouse in a storm (copy test)."))
    request = GenerationRequest(prompt=prompt, max_tokens=24,
                                sampling=SamplingParams(temperature=0, n_probs=2))
    # Holding the scheduler's (reentrant) lock while submitting makes the loop admit all
    # eight at once: they are read and decoded in the same batches, row beside row.
    with batched._scheduler._wake:
        gens = [batched.submit(request) for _ in range(8)]
    runs = []
    for gen in gens:
        chunks = list(gen)
        runs.append(([t for c in chunks for t in c.token_ids],
                     [lp.top[0][1] - lp.top[1][1] for c in chunks for lp in c.logprobs]))
    ids, margins = runs[0]
    assert len(ids) >= 8
    for other, _ in runs[1:]:
        assert agree_until_near_tie(ids, margins, other) >= 8


def test_stop_strings_max_tokens_and_deadline(batched):
    text, result = generate(batched, turn("Count from one to ten."), max_tokens=5)
    assert result.finish_reason == "length" and result.completion_tokens == 5
    assert result.cause is FinishCause.MAX_TOKENS
    full, _ = generate(batched, turn("Count from one to ten."), max_tokens=24)
    stop = full[len(full) // 2: len(full) // 2 + 3]
    cut, result = generate(batched, turn("Count from one to ten."), max_tokens=24, stop=(stop,))
    assert result.finish_reason == "stop" and cut == full[: full.index(stop)]
    assert result.cause is FinishCause.STOP_SEQUENCE and result.stop_sequence == stop
    _, result = generate(batched, turn("Write an essay."), max_tokens=500,
                         deadline=time.monotonic() + 0.3)
    assert result.finish_reason == "length" and result.completion_tokens < 500
    assert result.cause is FinishCause.DEADLINE


def test_grammar_constrains_and_a_bad_grammar_is_refused(batched):
    text, _ = generate(batched, turn("Is the sky blue?"),
                       sampling=SamplingParams(temperature=0.9, seed=1,
                                               grammar='root ::= "yes" | "no"'))
    assert text in ("yes", "no")
    with pytest.raises(InvalidRequest):
        generate(batched, turn("Hi"), sampling=SamplingParams(grammar="root ::= ( unclosed"))
    assert generate(batched, turn("Hi"), max_tokens=2)[1].completion_tokens >= 1


def test_bad_prompts_are_refused(batched):
    with pytest.raises(InvalidRequest, match="1024"):
        batched.submit(GenerationRequest(prompt=[2] * 1100, max_tokens=1))
    with pytest.raises(InvalidRequest, match="max_tokens"):
        batched.submit(GenerationRequest(prompt=[2] * 1000, max_tokens=100))
    with pytest.raises(InvalidRequest, match="vocabulary"):
        batched.submit(GenerationRequest(prompt=[2, 10**9], max_tokens=1))


def test_abort_frees_the_slot_and_a_full_queue_refuses(model_path, tmp_path):
    model = load(model_path, tmp_path, n_parallel=1, max_queue=1)
    try:
        long = model.submit(GenerationRequest(prompt=model.tokenize(turn("Write an essay.")),
                                              max_tokens=800, sampling=GREEDY))
        waiting = model.submit(GenerationRequest(prompt=model.tokenize(turn("Hi")),
                                                 max_tokens=2, sampling=GREEDY))
        with pytest.raises(QueueFull):
            model.submit(GenerationRequest(prompt=[2, 3], max_tokens=1))
        chunks = iter(long)
        next(chunks)
        long.abort()
        list(chunks)
        assert long.result.finish_reason == "abort"
        assert long.result.completion_tokens < 100
        list(waiting)
        assert waiting.result.completion_tokens >= 1
        stats = model.stats()
        assert (stats["active"], stats["queued"], stats["n_parallel"]) == (0, 0, 1)
    finally:
        model.close()


def test_disk_cache_survives_a_restart(model_path, tmp_path):
    prompt = turn("Remember this long context. " * 40 + "What did I say?")
    model = load(model_path, tmp_path, prompt_cache="disk")
    try:
        first_ids, first_tops, first = traced_run(model, prompt)
        assert first.cached_tokens == 0
    finally:
        model.close()
    deadline = time.monotonic() + 10
    while not list((tmp_path / "cache").rglob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.1)  # the state is written by a background thread
    model = load(model_path, tmp_path, prompt_cache="disk")
    try:
        ids, tops, result = traced_run(model, prompt)
        # The whole prompt comes back from disk with the logits after it: nothing is read
        # again, so the answer is the first run's, logprobs and all.
        assert result.cached_tokens == result.prompt_tokens == first.prompt_tokens
        assert (ids, tops) == (first_ids, first_tops)
    finally:
        model.close()


def test_embeddings_rank_related_texts_closer(batched):
    a, b, c = batched.embed([batched.tokenize(t) for t in (
        "The cat sat on the mat.", "A kitten rested on the rug.", "Stock markets fell today.")])
    dot = lambda x, y: sum(p * q for p, q in zip(x, y, strict=True))  # noqa: E731
    assert abs(dot(a, a) - 1) < 1e-4
    assert dot(a, b) > dot(a, c)


def test_text_assembler_holds_back_partial_stops_and_utf8():
    asm = TextAssembler(("STOP",))
    assert asm.feed(b"hello ST") == "hello "
    assert asm.feed(b"ay") == "STay"
    assert asm.feed("caf\u00e9".encode()[:4]) == "caf"  # half of the two-byte é is held
    assert asm.feed("caf\u00e9".encode()[4:] + b" ST") == "\u00e9 "
    assert asm.feed(b"OP and more") == "" and asm.stopped


def test_a_sliding_window_model_reuses_a_prefix_only_while_its_window_is_cached(
        gemma_path, tmp_path):
    """Gemma 3 keeps only the last window (512 positions) of its sliding-window layers, as in
    llama-server: continuing a long cached prompt reuses it, but a prompt that shares only its
    beginning must be read again (that part of the window is gone), and both must give the
    cold output."""
    lines = [f"Line {i}: the {TOPICS[i % len(TOPICS)]} report was filed on day {i}."
             for i in range(90)]
    text = " ".join(lines)
    warm_model = load(gemma_path, tmp_path / "warm", n_parallel=1, n_ctx=2048)
    cold_model = load(gemma_path, tmp_path / "cold", n_parallel=1, n_ctx=2048,
                      prompt_cache="off")
    try:
        n_swa = int(warm_model.metadata["gemma3.attention.sliding_window"])
        long_prompt = text + " Line 90:"
        assert len(warm_model.tokenize(long_prompt)) > 2 * n_swa
        greedy_run(warm_model, long_prompt, 8)

        longer = long_prompt + " the owls report was filed on day 90. Line 91:"
        ids, _, result = greedy_run(warm_model, longer)
        assert result.cached_tokens > 2 * n_swa  # the window before the kept end is there
        cold_ids, cold_margins, _ = greedy_run(cold_model, longer)
        assert agree_until_near_tie(cold_ids, cold_margins, ids) >= 4

        early = " ".join(lines[:12]) + " Line 12:"
        ids, _, result = greedy_run(warm_model, early)
        assert result.cached_tokens == 0  # shares a prefix whose window was dropped
        cold_ids, cold_margins, _ = greedy_run(cold_model, early)
        assert agree_until_near_tie(cold_ids, cold_margins, ids) >= 4
    finally:
        warm_model.close()
        cold_model.close()
