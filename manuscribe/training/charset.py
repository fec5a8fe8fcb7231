"""Which characters a recogniser's output layer holds.

The base PP-OCR model knows 18,710 characters, nearly all Chinese. For European handwriting we keep
the Latin, Greek and common-symbol ones it has, add those the ground truth uses that it lacks (ꝑ, ⁊,
combining marks), and drop the rest: a smaller softmax is faster to train and to run.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable

_KEEP_RANGES = (
    (0x0020, 0x024F),  # ASCII, Latin-1, Latin Extended-A/B
    (0x0300, 0x036F),  # combining diacritics
    (0x0370, 0x03FF),  # Greek
    (0x1E00, 0x1EFF),  # Latin Extended Additional
    (0x2000, 0x206F),  # general punctuation
    (0x20A0, 0x20CF),  # currency
    (0x2100, 0x218F),  # letterlike symbols, number forms
    (0xA720, 0xA7FF),  # Latin Extended-D (medieval abbreviations)
)


def _wanted(char: str) -> bool:
    code = ord(char)
    return any(lo <= code <= hi for lo, hi in _KEEP_RANGES) and not char.isspace()


def build_charset(
    base: list[str], texts: Iterable[str], min_count: int = 1
) -> tuple[list[str], list[str]]:
    """(charset, added): the base characters worth keeping for Latin-script handwriting, then
    every character of `texts` seen at least `min_count` times, in a stable order."""
    counts = Counter(ch for text in texts for ch in unicodedata.normalize("NFC", text))
    keep = [c for c in base if _wanted(c) or counts.get(c, 0) >= min_count]
    known = set(keep)
    added = sorted(
        c for c, n in counts.items() if n >= min_count and c not in known and not c.isspace()
    )
    return keep + added, added


def extend_charset(base: list[str], texts: Iterable[str]) -> tuple[list[str], list[str]]:
    """(charset, added) for fine-tuning a model: all of its characters, plus new ones."""
    known = set(base)
    seen = {ch for text in texts for ch in unicodedata.normalize("NFC", text)}
    added = sorted(c for c in seen if c not in known and not c.isspace())
    return list(base) + added, added
