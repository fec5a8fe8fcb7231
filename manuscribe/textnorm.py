"""One text normalisation for scoring and for training, so a model learns what eval counts.

Collections transcribe differently (see the training corpus README): superscripts marked with `^`,
struck-out text as `>word<`, `⟦ ⟧` or `[[ ]]`, curly quotes, decomposed accents, padding spaces.
"""

from __future__ import annotations

import re
import unicodedata

_STRUCK = re.compile(r">([^<>]*)<")
_SPACE = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s]")


def normalise(text: str) -> str:
    """Drop `^`, unwrap >…< and ⟦…⟧ and [[…]], ’→', NFC, collapse whitespace."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("^", "").replace("’", "'").replace("‘", "'")
    text = _STRUCK.sub(r"\1", text)
    for mark in ("⟦", "⟧", "[[", "]]"):
        text = text.replace(mark, "")
    return _SPACE.sub(" ", text).strip()


def loose(text: str) -> str:
    """The case- and punctuation-insensitive view: `normalise`, lower case, punctuation removed."""
    return _SPACE.sub(" ", _PUNCT.sub(" ", normalise(text).casefold())).strip()
