"""What every model backend shares: skip rules, prompts, batching, guards and throughput.

A backend subclasses `GuardedCorrector` and implements only `generate(requests)`: texts for
chats. `correct()` skips what is not worth a model call, builds one prompt per block, lets the
backend generate, cleans and judges each output (guards.py), and logs blocks/s and tokens/s.

`plan_batches` packs prompts by a token budget (longest first, so an out-of-memory error shows
on the first batch) and `AdaptiveBatcher` runs them, halving the batch on CUDA OOM and asking
the backend to fall back (fewer GPU layers, CPU) when a single prompt still does not fit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from manuscribe.correctors.base import BlockInput, CorrectorError
from manuscribe.correctors.guards import GuardConfig, judge, skip_reason
from manuscribe.correctors.prompt import (
    END,
    PROMPT_VERSION,
    build_messages,
    clean_output,
    prompt_fingerprint,
)
from manuscribe.model import Correction

log = logging.getLogger("manuscribe.correctors")


@dataclass
class GenerationRequest:
    messages: list[dict[str, str]]
    source: str
    max_new_tokens: int
    stop: list[str] = field(default_factory=list)


@dataclass
class Generation:
    text: str | None
    tokens: int = 0  # generated tokens (for tokens/s)
    error: str | None = None


@dataclass
class CorrectionOptions:
    guards: GuardConfig = field(default_factory=GuardConfig)
    keep_historical_spelling: bool = True
    max_new_tokens: int = 256
    batch_tokens: int = 4096

    @classmethod
    def from_settings(cls, settings) -> CorrectionOptions:
        return cls(
            guards=GuardConfig.from_settings(settings),
            keep_historical_spelling=bool(getattr(settings, "keep_historical_spelling", True)),
            max_new_tokens=int(getattr(settings, "max_new_tokens", 256)),
            batch_tokens=int(getattr(settings, "batch_tokens", 4096)),
        )


def new_token_cap(source: str, options: CorrectionOptions) -> int:
    """Tokens worth generating for one block.

    A token decodes to at least one character, and an answer longer than
    `max_length_ratio` x the source is rejected anyway, so generation stops there.
    """
    return max(
        8, min(options.max_new_tokens, int(len(source) * options.guards.max_length_ratio) + 8)
    )


def stop_strings(source: str) -> list[str]:
    """Strings that end an answer early: a blank line (when the source has none, it starts a
    repetition or a note) and the closing marker. What came before them is still judged."""
    return [s for s in ("\n\n", END) if s not in source]


def cut_at_stop(text: str, stop: list[str]) -> str:
    """Backends that return the stop string too (transformers) are cut the same way."""
    text = text.lstrip("\n")
    for s in stop:
        at = text.find(s)
        if at >= 0:
            text = text[:at]
    return text


@dataclass
class Throughput:
    blocks: int = 0
    tokens: int = 0
    seconds: float = 0.0

    def add(self, blocks: int, tokens: int, seconds: float) -> None:
        self.blocks += blocks
        self.tokens += tokens
        self.seconds += seconds

    @property
    def blocks_per_s(self) -> float:
        return self.blocks / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


class GuardedCorrector:
    """Base of the model backends; subclasses set `name` and implement `generate`."""

    name = "base"

    def __init__(self, model: str, options: CorrectionOptions, revision: str | None = None):
        self.model = model
        self.revision = revision
        self.options = options
        self.throughput = Throughput()

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        raise NotImplementedError

    def backend_settings(self) -> dict:
        """Backend-specific settings that change outputs (never secrets)."""
        return {}

    def settings(self) -> dict:
        return {
            "backend": self.name,
            "model": self.model,
            "revision": self.revision,
            "prompt": f"v{PROMPT_VERSION}-{prompt_fingerprint()}",
            "keep_historical_spelling": self.options.keep_historical_spelling,
            "max_new_tokens": self.options.max_new_tokens,
            "guards": self.options.guards.as_dict(),
            **self.backend_settings(),
        }

    def close(self) -> None:
        pass

    def correct(self, blocks: list[BlockInput]) -> list[Correction]:
        guards = self.options.guards
        results: list[Correction | None] = [None] * len(blocks)
        todo: list[int] = []
        for i, block in enumerate(blocks):
            reason = skip_reason(block, guards)
            if reason:
                results[i] = Correction(status="skipped", reason=reason, model=self.model)
            else:
                todo.append(i)
        requests = [
            GenerationRequest(
                messages=build_messages(
                    blocks[i].text,
                    blocks[i].language,
                    list(guards.glossary),
                    self.options.keep_historical_spelling,
                ),
                source=blocks[i].text,
                max_new_tokens=new_token_cap(blocks[i].text, self.options),
                stop=stop_strings(blocks[i].text),
            )
            for i in todo
        ]
        if requests:
            started = time.perf_counter()
            generations = self.generate(requests)
            elapsed = time.perf_counter() - started
            tokens = sum(g.tokens for g in generations)
            self.throughput.add(len(requests), tokens, elapsed)
            log.info(
                "%s: corrected %d blocks in %.2fs: %.1f blocks/s, %.1f tokens/s",
                self.name,
                len(requests),
                elapsed,
                len(requests) / elapsed if elapsed else 0.0,
                tokens / elapsed if elapsed else 0.0,
            )
            for i, req, gen in zip(todo, requests, generations, strict=True):
                if gen.error is not None:
                    results[i] = Correction(
                        status="skipped", reason=f"model error: {gen.error}", model=self.model
                    )
                else:
                    text = gen.text
                    if text is not None:
                        text = clean_output(cut_at_stop(text, req.stop))
                    results[i] = judge(blocks[i].text, text, guards, self.model, blocks[i].language)
        return [r for r in results if r is not None]


def plan_batches(
    prompt_tokens: Sequence[int],
    new_tokens: Sequence[int],
    budget: int,
    max_rows: int | None = None,
) -> list[list[int]]:
    """Group indices into batches whose padded size rows x (prompt + new) fits `budget`.

    Sorted longest first, so similar lengths share a batch (little padding) and the largest
    batch runs first. A prompt larger than the budget gets a batch of its own.
    """
    order = sorted(range(len(prompt_tokens)), key=lambda i: prompt_tokens[i], reverse=True)
    batches: list[list[int]] = []
    current: list[int] = []
    top_prompt = top_new = 0
    for i in order:
        p, n = max(top_prompt, prompt_tokens[i]), max(top_new, new_tokens[i])
        full = max_rows is not None and len(current) >= max_rows
        if current and (full or (len(current) + 1) * (p + n) > budget):
            batches.append(current)
            current, p, n = [], prompt_tokens[i], new_tokens[i]
        current.append(i)
        top_prompt, top_new = p, n
    if current:
        batches.append(current)
    return batches


class AdaptiveBatcher:
    """Runs planned batches; on out-of-memory it halves the batch, never retrying the same size.

    `run_batch(indices)` returns one result per index. `is_oom(exc)` says whether an exception
    is an out-of-memory error. `degrade(exc)` is called when a single prompt does not fit: it
    must free memory and reduce the model's footprint (fewer GPU layers, CPU) and return True,
    or return False when nothing is left to reduce (the error is then raised).
    """

    def __init__(self, batch_tokens: int, min_tokens: int = 64):
        self.batch_tokens = max(min_tokens, batch_tokens)
        self.min_tokens = min_tokens
        self.max_rows: int | None = None
        self.batches_run = 0

    def run(
        self,
        prompt_tokens: Sequence[int],
        new_tokens: Sequence[int],
        run_batch: Callable[[list[int]], list],
        is_oom: Callable[[BaseException], bool],
        degrade: Callable[[BaseException], bool],
    ) -> list:
        results: list = [None] * len(prompt_tokens)
        pending = list(range(len(prompt_tokens)))
        while pending:
            plan = plan_batches(
                [prompt_tokens[i] for i in pending],
                [new_tokens[i] for i in pending],
                self.batch_tokens,
                self.max_rows,
            )
            batch = [pending[j] for j in plan[0]]
            try:
                outputs = run_batch(batch)
            except Exception as exc:
                if not is_oom(exc):
                    raise
                if len(batch) > 1:
                    self.max_rows = max(1, len(batch) // 2)
                    self.batch_tokens = max(self.min_tokens, self.batch_tokens // 2)
                    log.warning(
                        "out of memory on a batch of %d prompts: batch halved to %d rows "
                        "(%d tokens)",
                        len(batch),
                        self.max_rows,
                        self.batch_tokens,
                    )
                    continue
                if not degrade(exc):
                    raise CorrectorError(
                        f"out of memory on a single prompt with nothing left to reduce: {exc}"
                    ) from exc
                continue
            self.batches_run += 1
            done = set(batch)
            for i, out in zip(batch, outputs, strict=True):
                results[i] = out
            pending = [i for i in pending if i not in done]
        return results
