"""Escaped HTML diffs: OCR -> corrected text, ground truth -> prediction.

Every piece of text goes through `html.escape`, so OCR output (untrusted: a scan can read
`<script>`) is only ever shown as text.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from html import escape

_TOKENS = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)


def tokens(text: str) -> list[str]:
    """Words, single punctuation marks and runs of whitespace, in order (they join to `text`)."""
    return _TOKENS.findall(text)


def diff_html(before: str, after: str) -> str:
    """`after` against `before` as escaped HTML: `<del>` what went, `<ins>` what came."""
    old, new = tokens(before), tokens(after)
    parts: list[str] = []
    matcher = SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            parts.append(_text("".join(old[i1:i2])))
            continue
        if i2 > i1:
            parts.append(f"<del>{_text(''.join(old[i1:i2]))}</del>")
        if j2 > j1:
            parts.append(f"<ins>{_text(''.join(new[j1:j2]))}</ins>")
    return "".join(parts)


def _text(value: str) -> str:
    return escape(value, quote=True).replace("\n", "<br>")
