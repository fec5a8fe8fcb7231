"""A character n-gram language model for the line recogniser's beam search.

The recogniser reads each handwritten character on its own; what a reader also uses is how the
language and the documents go on ("Testament de", "-ment", "the said"). A character n-gram model
of the training transcriptions carries that, costs no network, and runs in pure Python.

Smoothing is interpolated absolute discounting (Ney, Essen & Kneser 1994) with one discount D:

    P(c | h) = max(N(hc) - D, 0) / N(h.) + D * T(h.) / N(h.) * P(c | h')

where N(h.) counts what followed context h, T(h.) how many distinct characters did, and h' is h
without its first character; the chain ends in a uniform distribution over the vocabulary and
one unknown symbol, so a character the training text never had still gets a small probability.
A line is `BOS + text + EOS`; EOS is scored, so the model also knows where lines end.

The model travels inside the recogniser's ONNX file (metadata key `manuscribe_charlm`, zlib +
base64 JSON of the n-gram counts and the decoder's weights), so a model's sha256 covers its
language model and a worker that fetches a model by storage key gets both.
"""

from __future__ import annotations

import base64
import json
import math
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

METADATA_KEY = "manuscribe_charlm"
# a language the corpus has little of gets a model of its own lines as well, under
# METADATA_KEY + "_" + ISO 639-1 (manuscribe_charlm_en): the main model, 99% French text, pulls
# English readings towards French words ("to" -> "de"); the engine switches on a page's language
LANGUAGE_KEY_PREFIX = METADATA_KEY + "_"
BOS, EOS = "\x02", "\x03"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class DecoderWeights:
    """How the beam search mixes the recogniser with the LM: score = log P_ctc + weight * log
    P_lm + length_bonus * characters (the bonus offsets the LM's pull towards short readings)."""

    # chosen on the training corpus's validation pages, with the LM built with and without the
    # page's own collection (docs/models.md)
    weight: float = 0.3
    length_bonus: float = 1.0
    beam: int = 16
    prune: float = 1e-2  # characters below this probability in a frame are not tried


@dataclass
class CharNgramLM:
    order: int
    counts: dict[str, int]  # every kept n-gram of length 1..order
    discount: float = 0.75
    weights: DecoderWeights = field(default_factory=DecoderWeights)

    def __post_init__(self) -> None:
        contexts: dict[str, list[int]] = {}
        for gram, count in self.counts.items():
            stats = contexts.setdefault(gram[:-1], [0, 0])
            stats[0] += count
            stats[1] += 1
        self._contexts = {h: (total, types) for h, (total, types) in contexts.items()}
        vocabulary = {gram for gram in self.counts if len(gram) == 1}
        self._floor = 1.0 / (len(vocabulary) + 1)
        self._cached = lru_cache(maxsize=1 << 18)(self._logprob)

    @classmethod
    def build(
        cls,
        texts: Iterable[str],
        order: int = 6,
        min_count: int = 2,
        discount: float = 0.75,
        weights: DecoderWeights | None = None,
    ) -> CharNgramLM:
        """Count the n-grams of `texts`; those of order 3 and up seen fewer than `min_count`
        times are dropped (they are mostly one line's accidents, and they make the model big)."""
        counts = count_ngrams(texts, order)
        kept = {g: c for g, c in counts.items() if len(g) < 3 or c >= min_count}
        return cls(order, kept, discount, weights or DecoderWeights())

    def logprob(self, context: str, char: str) -> float:
        """ln P(char | context); `context` is the text so far (BOS added here)."""
        keep = self.order - 1
        if len(context) >= keep:
            return self._cached(context[len(context) - keep :], char)
        return self._cached(BOS + context, char)

    def _logprob(self, history: str, char: str) -> float:
        p = self._floor
        for k in range(len(history) + 1):
            h = history[len(history) - k :]
            stats = self._contexts.get(h)
            if stats is None:  # a longer context is unseen too
                break
            total, types = stats
            seen = self.counts.get(h + char, 0)
            p = (max(seen - self.discount, 0.0) + self.discount * types * p) / total
        return math.log(p)

    def end_logprob(self, text: str) -> float:
        return self.logprob(text, EOS)

    def score(self, text: str) -> float:
        """ln P(text) as a whole line, EOS included."""
        return sum(self.logprob(text[:i], ch) for i, ch in enumerate(text)) + self.end_logprob(text)

    def merged(self, other: CharNgramLM) -> CharNgramLM:
        """This model's counts plus `other`'s: a collection's own transcriptions added to the
        corpus the shipped model was built from."""
        counts = Counter(self.counts)
        for gram, count in other.counts.items():
            if len(gram) <= self.order:
                counts[gram] += count
        return CharNgramLM(self.order, dict(counts), self.discount, self.weights)

    def to_metadata(self) -> str:
        payload = {
            "format": FORMAT_VERSION,
            "order": self.order,
            "discount": self.discount,
            "weights": self.weights.__dict__,
            "counts": self.counts,
        }
        raw = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        return base64.b64encode(zlib.compress(raw, 9)).decode("ascii")

    @classmethod
    def from_metadata(cls, value: str) -> CharNgramLM:
        try:
            payload = json.loads(zlib.decompress(base64.b64decode(value)))
        except (ValueError, zlib.error) as exc:
            raise ValueError(f"{METADATA_KEY}: not a character language model ({exc})") from exc
        if payload.get("format") != FORMAT_VERSION:
            raise ValueError(f"{METADATA_KEY}: format {payload.get('format')!r} is not supported")
        return cls(
            order=int(payload["order"]),
            counts={str(g): int(c) for g, c in payload["counts"].items()},
            discount=float(payload["discount"]),
            weights=DecoderWeights(**payload["weights"]),
        )


def language_key(language: str) -> str:
    """The metadata key of `language`'s own model."""
    return LANGUAGE_KEY_PREFIX + language


def count_ngrams(texts: Iterable[str], order: int) -> Counter:
    """Counts of every n-gram (1..order) of `BOS + text + EOS`, BOS never predicted."""
    counts: Counter = Counter()
    for text in texts:
        text = " ".join(text.replace(BOS, "").replace(EOS, "").split())
        if not text:
            continue
        line = BOS + text + EOS
        for i in range(1, len(line)):
            for k in range(1, min(order, i + 1) + 1):
                counts[line[i - k + 1 : i + 1]] += 1
    return counts
