"""Language per block (ISO 639-1 + confidence) with py3langid, offline and small.

Handwriting OCR is noisy, so candidates are restricted to the configured languages, short blocks are
`und`, and a block the identifier is unsure of takes the page's language (or the --lang hint).
"""

from __future__ import annotations

import threading

from manuscribe.model import Page

MIN_LETTERS = 12  # below this a block is `und`: too little text to tell
UNSURE = 0.6  # below this probability a block falls back to the page language / hint

_lock = threading.Lock()
_identifiers: dict[tuple[str, ...], object] = {}


def _identifier(candidates: tuple[str, ...]):
    with _lock:
        if candidates not in _identifiers:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
            known = set(identifier.nb_classes)
            usable = [c for c in candidates if c in known]
            if usable:
                identifier.set_languages(usable)
            _identifiers[candidates] = identifier
        return _identifiers[candidates]


def letters(text: str) -> int:
    return sum(ch.isalpha() for ch in text)


def identify(text: str, candidates: list[str]) -> tuple[str, float]:
    """(language, probability), or ("und", 0.0) when the text is too short to tell."""
    if letters(text) < MIN_LETTERS:
        return "und", 0.0
    language, probability = _identifier(tuple(candidates)).classify(text)
    return language, round(float(probability), 3)


def identify_page(page: Page, candidates: list[str], hint: str | None = None) -> None:
    """Set `language` / `language_confidence` on every block of `page`, in place."""
    page_text = "\n".join(b.text for b in page.blocks)
    page_language, page_probability = identify(page_text, candidates)
    fallback = hint or (page_language if page_probability >= UNSURE else None)
    for block in page.blocks:
        language, probability = identify(block.text, candidates)
        if language == "und":
            block.language, block.language_confidence = "und", 0.0
        elif probability < UNSURE and fallback:
            block.language = fallback
            block.language_confidence = page_probability if fallback == page_language else 0.5
        else:
            block.language, block.language_confidence = language, probability
