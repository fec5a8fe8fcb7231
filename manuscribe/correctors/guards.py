"""Guards: per block, decide whether a model's correction may replace the OCR text.

A correction is applied only when it looks like a fix of recognition errors and nothing else:
same number of lines, similar length, a bounded edit distance, the same numbers and dates, the
glossary terms kept, no commentary, no text added or dropped, and every changed word turned
from a non-word into a dictionary word (pyspellchecker, when it has the language). Anything else is
`rejected` with the reason, and the OCR text stays. Blocks that are not worth a model call
(empty, no letters, very low confidence) are `skipped` before generation.
"""

from __future__ import annotations

import difflib
import functools
import logging
import re
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass, field

from rapidfuzz.distance import Indel, Levenshtein

from manuscribe.correctors.base import BlockInput
from manuscribe.model import Correction

log = logging.getLogger("manuscribe.correctors")

# A replaced span of words must stay this similar (rapidfuzz Indel ratio) to its source span:
# below it the model rewrote or translated rather than fixed a misreading.
MIN_SPAN_SIMILARITY = 0.5
# Whole words inserted where the source has nothing: more than this many characters = added text.
MAX_INSERTED_CHARS = 2
# Punctuation marks a correction may add to a block (a weak model sprinkles full stops).
MAX_INSERTED_PUNCTUATION = 1
# Letters whose capital is a larger copy of the small letter: a case misreading is plausible.
SAME_SHAPE_CASE = set("ckopsuvwxz")

MONTHS = {
    # fr
    "janvier", "fevrier", "mars", "avril", "mai", "juin", "juillet", "aout", "septembre",
    "octobre", "novembre", "decembre", "7bre", "8bre", "9bre", "xbre",
    # en
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep",
    "sept", "oct", "nov", "dec",
}  # fmt: skip

COMMENTARY = re.compile(
    r"^\s*(here\s+is|here's|the\s+corrected|corrected\s+text|correction\s*:|note\s*:|"
    r"explanation|i\s+(have|corrected|fixed|changed)|voici|texte\s+corrig|remarque\s*:|"
    r"n\.\s*b\.|sure[,!]|certainly|output\s*:|answer\s*:|r[ée]ponse\s*:)",
    re.IGNORECASE,
)
MARKERS = ("<<<", ">>>", "```", "<|", "|>")
_WORD = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]", re.UNICODE)
_NUMBER = re.compile(r"\d+")


@dataclass(frozen=True)
class GuardConfig:
    max_edit_ratio: float = 0.35
    min_length_ratio: float = 0.7
    max_length_ratio: float = 1.3
    min_confidence: float = 0.2
    lexicon: bool = True  # changed words must become real words (pyspellchecker dictionaries)
    # a block of unknown language (`und`) is checked against the union of these languages' lists
    fallback_languages: tuple[str, ...] = ("fr", "en", "de", "es", "it", "nl", "pt")
    glossary: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def from_settings(cls, settings) -> GuardConfig:
        return cls(
            max_edit_ratio=float(getattr(settings, "guard_max_edit_ratio", cls.max_edit_ratio)),
            min_length_ratio=float(
                getattr(settings, "guard_min_length_ratio", cls.min_length_ratio)
            ),
            max_length_ratio=float(
                getattr(settings, "guard_max_length_ratio", cls.max_length_ratio)
            ),
            min_confidence=float(getattr(settings, "guard_min_confidence", cls.min_confidence)),
            lexicon=bool(getattr(settings, "guard_lexicon", cls.lexicon)),
            fallback_languages=tuple(getattr(settings, "languages", None) or ())
            or cls.fallback_languages,
            glossary=tuple(t for t in (getattr(settings, "glossary", None) or []) if t.strip()),
        )

    def as_dict(self) -> dict:
        out = asdict(self)
        out["glossary"] = list(self.glossary)
        out["min_span_similarity"] = MIN_SPAN_SIMILARITY
        out["max_inserted_chars"] = MAX_INSERTED_CHARS
        out["max_inserted_punctuation"] = MAX_INSERTED_PUNCTUATION
        return out


def skip_reason(block: BlockInput, config: GuardConfig) -> str | None:
    """Why a block is not sent to the model at all, or None."""
    if not block.text.strip():
        return "empty block"
    if not any(ch.isalpha() for ch in block.text):
        return "no letters (numeric or punctuation only)"
    if block.confidence < config.min_confidence:
        return f"OCR confidence {block.confidence:.2f} below {config.min_confidence:.2f}"
    return None


def _fold(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _months(text: str) -> Counter:
    return Counter(w for w in (_fold(t) for t in re.findall(r"\w+", text)) if w in MONTHS)


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _shorten(text: str, limit: int = 40) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


@functools.lru_cache(maxsize=16)
def lexicon(language: str) -> frozenset[str] | None:
    """Lower-case word list for `language` (pyspellchecker's dictionaries), or None."""
    code = (language or "").lower().split("-")[0]
    try:
        from spellchecker import SpellChecker
    except ImportError:
        log.warning("pyspellchecker is not installed: the lexicon guard is off (weaker guards)")
        return None
    try:
        words = SpellChecker(language=code).word_frequency.dictionary
    except Exception:  # no dictionary for this language: the other guards still apply
        return None
    return frozenset(words)


@functools.lru_cache(maxsize=4)
def union_lexicon(languages: tuple[str, ...]) -> frozenset[str] | None:
    """All the word lists of `languages` together, for blocks whose language is unknown."""
    lists = [w for w in (lexicon(lang) for lang in languages) if w is not None]
    return frozenset().union(*lists) if lists else None


def _known(word: str, words: frozenset[str], extra: set[str]) -> bool:
    parts = [p for p in re.split(r"['’]", word) if len(p) > 1]  # j'institue -> institue
    return all(p.lower() in words or p in extra for p in parts)


def _alnum_chars(tokens: list[str]) -> int:
    return sum(len(t) for t in tokens if any(c.isalnum() for c in t))


def _case_reason(old: str, new: str) -> str | None:
    """Case changes only where upper and lower case look alike in handwriting (c/C, o/O...)."""
    for a, b in zip(old, new, strict=True):
        if a != b and a.lower() not in SAME_SHAPE_CASE:
            return f"changes the case of {old!r} to {new!r}"
    return None


def _lexicon_reason(old: str, new: str, words: frozenset[str], extra: set[str]) -> str | None:
    """A changed word must become a known word, and a known word must not be changed.

    `extra` (glossary words and the block's own words) count as known for the new word only.
    """
    if not any(c.isalpha() for c in old + new) or old.lower() == new.lower():
        return None
    if _known(old, words, set()):
        return f"changes the valid word {old!r} to {new!r}"
    if not _known(new, words, extra):
        return f"{new!r} is not a known word"
    return None


def _added_or_rewritten(
    source: str, candidate: str, words: frozenset[str] | None = None, extra: set[str] = frozenset()
) -> str | None:
    """Word-level alignment: pure insertions and dissimilar replacements are not corrections."""
    src, out = _words(source), _words(candidate)
    matcher = difflib.SequenceMatcher(a=src, b=out, autojunk=False)
    punctuation = 0
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "insert":
            added = " ".join(out[j1:j2])
            if _alnum_chars(out[j1:j2]) > MAX_INSERTED_CHARS:
                return f"adds text not in the source: {_shorten(added)!r}"
            punctuation += j2 - j1
            if punctuation > MAX_INSERTED_PUNCTUATION:
                return f"adds punctuation: {_shorten(added)!r}"
        elif tag == "delete":
            if _alnum_chars(src[i1:i2]) > 0:  # dropping a misread stray mark is not worth the risk
                return f"drops text: {_shorten(' '.join(src[i1:i2]))!r}"
        elif tag == "replace":
            old, new = " ".join(src[i1:i2]), " ".join(out[j1:j2])
            if len(new) > 1.5 * len(old) + 3:
                return f"adds text not in the source: {_shorten(new)!r}"
            # same word count: word by word; a merge or split: the spans without spaces
            pairs = (
                list(zip(src[i1:i2], out[j1:j2], strict=True))
                if i2 - i1 == j2 - j1
                else [("".join(src[i1:i2]), "".join(out[j1:j2]))]
            )
            for a, b in pairs:
                if max(len(a), len(b)) >= 3 and _similarity(a, b) < MIN_SPAN_SIMILARITY:
                    return f"rewrites {_shorten(old)!r} as {_shorten(new)!r}"
                if a != b and a.lower() == b.lower() and (reason := _case_reason(a, b)):
                    return reason
                if words is not None and (reason := _lexicon_reason(a, b, words, extra)):
                    return reason
    return None


def _similarity(a: str, b: str) -> float:
    return Indel.normalized_similarity(_fold(a), _fold(b))


def rejection_reason(
    source: str, candidate: str, config: GuardConfig, language: str = "und"
) -> str | None:
    """Why `candidate` may not replace `source`, or None when it passes every guard."""
    if not candidate.strip():
        return "empty output"
    for marker in MARKERS:
        if marker in candidate and marker not in source:
            return f"output contains {marker!r}"
    for line in candidate.split("\n"):
        if COMMENTARY.match(line) and line.strip() not in source:
            return f"commentary: {_shorten(line)!r}"
    n_src, n_out = source.count("\n") + 1, candidate.count("\n") + 1
    if n_src != n_out:
        return f"line count changed ({n_src} -> {n_out})"
    ratio = len(candidate) / max(1, len(source))
    if not config.min_length_ratio <= ratio <= config.max_length_ratio:
        return (
            f"length ratio {ratio:.2f} outside "
            f"[{config.min_length_ratio:.2f}, {config.max_length_ratio:.2f}]"
        )
    edit = Levenshtein.normalized_distance(source, candidate)
    if edit > config.max_edit_ratio:
        return f"edit ratio {edit:.2f} above {config.max_edit_ratio:.2f}"
    if Counter(_NUMBER.findall(source)) != Counter(_NUMBER.findall(candidate)):
        return "numbers changed"
    if _months(source) != _months(candidate):
        return "dates changed (month names)"
    for term in config.glossary:
        if candidate.count(term) < source.count(term):
            return f"glossary term {term!r} changed"
    words = None
    if config.lexicon:
        known = (language or "und").lower() not in ("", "und", "unknown")
        words = lexicon(language) if known else union_lexicon(config.fallback_languages)
    extra = set(_words(source)) | {w for term in config.glossary for w in _words(term)}
    return _added_or_rewritten(source, candidate, words, extra)


def normalise_output(candidate: str) -> str:
    """Trailing blanks per line are not a correction."""
    return "\n".join(line.rstrip() for line in candidate.split("\n"))


def judge(
    source: str, candidate: str | None, config: GuardConfig, model: str, language: str = "und"
) -> Correction:
    """The Correction for one block given the model's (cleaned) output."""
    if candidate is None:
        return Correction(status="skipped", reason="no output from the model", model=model)
    candidate = normalise_output(candidate)
    reason = rejection_reason(source, candidate, config, language)
    if reason is not None:
        return Correction(status="rejected", reason=reason, model=model)
    if candidate == normalise_output(source):
        return Correction(text=source, status="applied", reason="unchanged", model=model)
    edit = Levenshtein.distance(source, candidate)
    return Correction(
        text=candidate, status="applied", reason=f"{edit} character edits", model=model
    )
