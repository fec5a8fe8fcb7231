"""The per-block correction prompt and the cleanup of what the model answers.

One chat (system + user message) per block. The system message carries the rules (fix
recognition errors only, keep every line break, keep the glossary, keep period spelling); the
user message carries the block's language and its OCR text between markers. Any instruct model
with a chat template gets the same messages, so changing the model is one setting.
"""

from __future__ import annotations

import hashlib
import re

PROMPT_VERSION = "1"

LANGUAGE_NAMES = {
    "fr": "French",
    "en": "English",
    "de": "German",
    "es": "Spanish",
    "it": "Italian",
    "nl": "Dutch",
    "pt": "Portuguese",
    "la": "Latin",
    "ja": "Japanese",
    "ca": "Catalan",
    "oc": "Occitan",
    "br": "Breton",
    "pl": "Polish",
    "sv": "Swedish",
    "da": "Danish",
}

BEGIN = "<<<"
END = ">>>"

SYSTEM_RULES = """You correct errors made by a handwriting recognition system (OCR).
You receive the OCR text of one block of a handwritten page, between {begin} and {end}.
Rules:
- Fix only letters and words that were misread. Do not rephrase, translate, summarise or complete.
- Keep exactly the same number of lines: line i of your answer is line i of the input.
- Keep every number and date exactly as written.
- Keep punctuation, abbreviations and capitalisation unless they are clearly misread.
{spelling}{glossary}- If nothing needs fixing, repeat the text unchanged.
- Answer with the corrected text only: no markers, no quotes, no explanation."""

HISTORICAL = "- Keep historical and period spelling as written: do not modernise spelling.\n"
MODERN = "- You may normalise obviously misspelt words to their standard spelling.\n"


def language_name(code: str) -> str | None:
    """English name of an ISO 639-1 code; None for unknown (`und`, empty)."""
    return LANGUAGE_NAMES.get((code or "").lower().split("-")[0])


def system_message(glossary: list[str], keep_historical_spelling: bool) -> str:
    spelling = HISTORICAL if keep_historical_spelling else MODERN
    terms = [t.strip() for t in glossary if t and t.strip()]
    gloss = ""
    if terms:
        gloss = (
            "- These names, places and spellings are correct: keep them exactly as written: "
            + "; ".join(terms)
            + ".\n"
        )
    return SYSTEM_RULES.format(begin=BEGIN, end=END, spelling=spelling, glossary=gloss)


def user_message(text: str, language: str) -> str:
    name = language_name(language)
    lines = text.count("\n") + 1
    head = f"Language: {name}." if name else "Language: unknown (keep the text's own language)."
    plural = "line" if lines == 1 else "lines"
    return f"{head} The text has {lines} {plural}.\n{BEGIN}\n{text}\n{END}"


def build_messages(
    text: str, language: str, glossary: list[str], keep_historical_spelling: bool
) -> list[dict[str, str]]:
    """The chat for one block, ready for a tokenizer's chat template or a chat API."""
    return [
        {"role": "system", "content": system_message(glossary, keep_historical_spelling)},
        {"role": "user", "content": user_message(text, language)},
    ]


def prompt_fingerprint() -> str:
    """Changes whenever the prompt wording changes (goes into the corrector's settings)."""
    body = SYSTEM_RULES + HISTORICAL + MODERN + PROMPT_VERSION + BEGIN + END
    return hashlib.sha256(body.encode()).hexdigest()[:12]


_END_LINE = re.compile(r"^\s*>{2,3}\s*$")
_FENCE = re.compile(r"^```[\w-]*\n(.*?)\n?```$", re.DOTALL)


def clean_output(raw: str) -> str:
    """Undo harmless wrapping the model may add (code fences, echoed markers, edge blanks).

    Anything else the model added (a preamble, a note) stays, so the guards can reject it.
    """
    text = raw.replace("\r\n", "\n").strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    lines = text.split("\n")
    if lines and lines[0].strip() == BEGIN:
        lines = lines[1:]
    if lines and _END_LINE.match(lines[-1]):
        lines = lines[:-1]
    return "\n".join(lines).strip("\n").rstrip()
