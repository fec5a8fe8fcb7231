"""tesseract through tesserocr: Debian's tesseract models, real blocks, paragraphs and word scores.

About five times faster than rapidocr and good on printed batches, much weaker on cursive.
One tesseract API per engine instance; tesserocr releases the GIL while recognising, so one
instance per worker thread gives real parallelism.
"""

from __future__ import annotations

import glob
import os

from PIL import Image

from manuscribe.engines.base import EngineError, Hints, PageResult
from manuscribe.model import Line, Word

# ISO 639-1 -> tesseract traineddata names, for the --lang hint
TESSERACT_LANGS = {
    "fr": "fra", "en": "eng", "de": "deu", "es": "spa", "it": "ita", "nl": "nld",
    "pt": "por", "la": "lat", "ja": "jpn",
}  # fmt: skip


class TesseractEngine:
    name = "tesseract"

    def __init__(self, lang: str = "fra+eng"):
        try:
            import tesserocr
        except ImportError as exc:
            raise EngineError(
                "the tesseract engine needs tesserocr and Debian's tesseract-ocr packages: "
                "apt-get install tesseract-ocr tesseract-ocr-fra libtesseract-dev && "
                "pip install tesserocr"
            ) from exc
        self._tesserocr = tesserocr
        self.lang = lang
        self.version = tesserocr.tesseract_version().split()[1]
        self.tessdata = find_tessdata()
        available = set(tesserocr.get_languages(self.tessdata)[1])
        missing = [code for code in lang.split("+") if code not in available]
        if missing:
            raise EngineError(
                f"tesseract language data missing: {', '.join(missing)} "
                f"(apt-get install {' '.join('tesseract-ocr-' + m for m in missing)})"
            )
        self._api = tesserocr.PyTessBaseAPI(path=self.tessdata, lang=lang, psm=tesserocr.PSM.AUTO)

    def settings(self) -> dict:
        return {"lang": self.lang, "psm": "auto"}

    def recognize(self, image: Image.Image, hints: Hints) -> PageResult:
        tess = self._tesserocr
        api = self._api
        api.SetImage(image)
        api.SetSourceResolution(hints.dpi)
        api.Recognize()
        lines: list[Line] = []
        blocks: list[list[int]] = []
        iterator = api.GetIterator()
        level_block, level_line, level_word = (
            tess.RIL.BLOCK, tess.RIL.TEXTLINE, tess.RIL.WORD,
        )  # fmt: skip
        current_block: list[int] = []
        words: list[Word] = []
        if iterator is None:
            return PageResult(lines=[])
        while True:
            if iterator.IsAtBeginningOf(level_block) and current_block:
                blocks.append(current_block)
                current_block = []
            box = iterator.BoundingBox(level_word)
            text = _text(iterator, level_word)
            if box and text:
                words.append(
                    Word(bbox=box, text=text, confidence=iterator.Confidence(level_word) / 100)
                )
            if iterator.IsAtFinalElement(level_line, level_word):
                line_box = iterator.BoundingBox(level_line)
                if words and line_box:
                    current_block.append(len(lines))
                    lines.append(_line(line_box, words))
                words = []
            if not iterator.Next(level_word):
                break
        if current_block:
            blocks.append(current_block)
        return PageResult(lines=lines, blocks=blocks)

    def close(self) -> None:
        if self._api is not None:
            self._api.End()
            self._api = None


def find_tessdata() -> str:
    """TESSDATA_PREFIX if set, else Debian's tessdata folder (the PyPI wheel knows no default)."""
    explicit = os.environ.get("TESSDATA_PREFIX")
    if explicit:
        return explicit.rstrip("/") + "/"
    found = sorted(glob.glob("/usr/share/tesseract-ocr/*/tessdata"))
    return (found[-1] + "/") if found else "./"


def _text(iterator, level) -> str:
    """The element's text; tesserocr raises "No text returned" for an empty element."""
    try:
        return (iterator.GetUTF8Text(level) or "").strip()
    except RuntimeError:
        return ""


def _line(bbox: tuple[int, int, int, int], words: list[Word]) -> Line:
    confidence = sum(w.confidence for w in words) / len(words)
    text = " ".join(w.text for w in words)
    return Line(bbox=bbox, text=text, confidence=round(confidence, 4), words=words)
