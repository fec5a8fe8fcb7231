"""Helpers shared by the archival renderers (ALTO, PAGE, hOCR, searchable PDF).

The central piece is `line_tokens`: the words of a line's *main* text (corrected when a
correction was applied, else OCR) with a box and a confidence each, and, for corrected words,
the OCR words they replace. Boxes come from the engine's words when it gave them, and are
otherwise estimated from the character offsets along the line box.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher

from manuscribe.layout import union
from manuscribe.model import BBox, Block, Document, Line, Page, Point

# ISO 639-1 -> the language names of PAGE's LanguageSimpleType (2019-07-15).
_PAGE_LANGUAGES = (
    "ab:Abkhaz aa:Afar af:Afrikaans ak:Akan sq:Albanian am:Amharic ar:Arabic an:Aragonese "
    "hy:Armenian as:Assamese av:Avaric ae:Avestan ay:Aymara az:Azerbaijani bm:Bambara "
    "ba:Bashkir eu:Basque be:Belarusian bn:Bengali bh:Bihari bi:Bislama bs:Bosnian br:Breton "
    "bg:Bulgarian my:Burmese km:Khmer ca:Catalan ch:Chamorro ce:Chechen ny:Chichewa zh:Chinese "
    "cv:Chuvash kw:Cornish co:Corsican cr:Cree hr:Croatian cs:Czech da:Danish dv:Divehi "
    "nl:Dutch dz:Dzongkha en:English eo:Esperanto et:Estonian ee:Ewe fo:Faroese fj:Fijian "
    "fi:Finnish fr:French ff:Fula gd:Gaelic gl:Galician lg:Ganda ka:Georgian de:German "
    "el:Greek gn:Guaraní gu:Gujarati ht:Haitian ha:Hausa he:Hebrew hz:Herero hi:Hindi "
    "ho:Hiri_Motu hu:Hungarian is:Icelandic io:Ido ig:Igbo id:Indonesian ia:Interlingua "
    "ie:Interlingue iu:Inuktitut ik:Inupiaq ga:Irish it:Italian ja:Japanese jv:Javanese "
    "kl:Kalaallisut kn:Kannada kr:Kanuri ks:Kashmiri kk:Kazakh ki:Kikuyu rw:Kinyarwanda "
    "rn:Kirundi kv:Komi kg:Kongo ko:Korean ku:Kurdish kj:Kwanyama ky:Kyrgyz lo:Lao la:Latin "
    "lv:Latvian li:Limburgish ln:Lingala lt:Lithuanian lu:Luba-Katanga lb:Luxembourgish "
    "mk:Macedonian mg:Malagasy ms:Malay ml:Malayalam mt:Maltese gv:Manx mi:Māori mr:Marathi "
    "mh:Marshallese mn:Mongolian na:Nauru nv:Navajo ng:Ndonga ne:Nepali nd:North_Ndebele "
    "se:Northern_Sami no:Norwegian nb:Norwegian_Bokmål nn:Norwegian_Nynorsk ii:Nuosu "
    "oc:Occitan oj:Ojibwe cu:Old_Church_Slavonic or:Oriya om:Oromo os:Ossetian pi:Pāli "
    "pa:Panjabi ps:Pashto fa:Persian pl:Polish pt:Portuguese qu:Quechua ro:Romanian "
    "rm:Romansh ru:Russian sm:Samoan sg:Sango sa:Sanskrit sc:Sardinian sr:Serbian sn:Shona "
    "sd:Sindhi si:Sinhala sk:Slovak sl:Slovene so:Somali nr:South_Ndebele st:Southern_Sotho "
    "es:Spanish su:Sundanese sw:Swahili ss:Swati sv:Swedish tl:Tagalog ty:Tahitian tg:Tajik "
    "ta:Tamil tt:Tatar te:Telugu th:Thai bo:Tibetan ti:Tigrinya to:Tonga ts:Tsonga tn:Tswana "
    "tr:Turkish tk:Turkmen tw:Twi ug:Uighur uk:Ukrainian ur:Urdu uz:Uzbek ve:Venda "
    "vi:Vietnamese vo:Volapük wa:Walloon cy:Welsh fy:Western_Frisian wo:Wolof xh:Xhosa "
    "yi:Yiddish yo:Yoruba za:Zhuang zu:Zulu"
)
PAGE_LANGUAGE_NAMES: dict[str, str] = {
    code: name.replace("_", " ")
    for code, name in (item.split(":") for item in _PAGE_LANGUAGES.split())
}

_NCNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(value: str) -> str:
    """`value` without the characters XML 1.0 cannot hold (NUL, form feed, lone surrogates...)."""
    return _NOT_XML.sub("", value)


def iso_language(code: str | None) -> str | None:
    """The block's language as an xsd:language / HTML lang value; None when undetermined."""
    code = (code or "").strip()
    if not code or code.lower() in ("und", "unknown", "zxx"):
        return None
    return code if re.fullmatch(r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*", code) else None


def page_language(code: str | None) -> str | None:
    """ISO 639-1 (or a BCP 47 tag starting with one) -> PAGE language name; None for `und`."""
    iso = iso_language(code)
    if iso is None:
        return None
    return PAGE_LANGUAGE_NAMES.get(iso.split("-")[0].lower(), "other")


def is_corrected(block: Block) -> bool:
    correction = block.correction
    return bool(correction and correction.status == "applied" and correction.text is not None)


def line_texts(block: Block) -> list[tuple[Line, str, str]]:
    """(line, main text, original OCR text) for each line of a block.

    Corrections keep the OCR's line breaks, so corrected line i is line i of the corrected text.
    A correction whose line count does not match (which the guards should never let through)
    is not spread over lines: the lines then carry the OCR text.
    """
    main = [line.text for line in block.lines]
    if is_corrected(block):
        corrected = block.correction.text.split("\n")
        if len(corrected) == len(block.lines):
            main = corrected
    return [(line, text, line.text) for line, text in zip(block.lines, main, strict=True)]


def clamp_bbox(bbox: BBox, page: Page) -> BBox:
    """A box inside the page with x0 <= x1 and y0 <= y1 (engines may overshoot by a pixel)."""
    x0, y0, x1, y1 = (int(round(v)) for v in bbox)
    x0, x1 = sorted((x0, x1))
    y0, y1 = sorted((y0, y1))
    width = page.width if page.width > 0 else max(x1, 0)
    height = page.height if page.height > 0 else max(y1, 0)
    x0, x1 = min(max(x0, 0), width), min(max(x1, 0), width)
    y0, y1 = min(max(y0, 0), height), min(max(y1, 0), height)
    return x0, y0, x1, y1


def _page_extent(page: Page, xs: list[int], ys: list[int]) -> tuple[int, int]:
    width = page.width if page.width > 0 else max([*xs, 0])
    height = page.height if page.height > 0 else max([*ys, 0])
    return width, height


def clamp_points(points: list[Point], page: Page) -> list[Point]:
    """Points rounded and moved inside the page, a point repeating the one before it dropped."""
    rounded = [(int(round(x)), int(round(y))) for x, y in points]
    width, height = _page_extent(page, [p[0] for p in rounded], [p[1] for p in rounded])
    result: list[Point] = []
    for x, y in rounded:
        point = (min(max(x, 0), width), min(max(y, 0), height))
        if not result or result[-1] != point:
            result.append(point)
    return result


def line_baseline(line: Line, page: Page) -> list[Point]:
    """The line's baseline inside the page; empty when it has fewer than 2 distinct points."""
    points = clamp_points(line.baseline, page)
    return points if len(points) >= 2 else []


def line_polygon(line: Line, page: Page) -> list[Point]:
    """The line's outline inside the page, without a repeated closing point; empty when it has
    fewer than 3 distinct points or encloses no area (all points on one line)."""
    points = clamp_points(line.polygon, page)
    if len(points) > 1 and points[0] == points[-1]:
        points.pop()
    if len(points) < 3:
        return []
    twice_area = sum(
        x0 * y1 - x1 * y0
        for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True)
    )
    return points if twice_area != 0 else []


def points_text(points: list[Point]) -> str:
    """`x1,y1 x2,y2 ...`: the points format of PAGE and of ALTO's PointsType."""
    return " ".join(f"{x},{y}" for x, y in points)


def confidence(value: float) -> float:
    """A 0..1 confidence, rounded; engines reporting 0..100 are scaled down."""
    value = float(value)
    if value > 1.0:
        value /= 100.0
    return round(min(max(value, 0.0), 1.0), 4)


@dataclass
class Token:
    """One word of a line's main text."""

    text: str
    bbox: BBox
    confidence: float
    original: str | None = None  # the OCR text it replaces, set only when that differs


def _spans(text: str) -> list[tuple[str, int, int]]:
    return [(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", text)]


def _estimate(bbox: BBox, start: int, end: int, length: int) -> BBox:
    """The part of a line box that characters start..end of a `length`-char line cover."""
    x0, y0, x1, y1 = bbox
    if length <= 0:
        return bbox
    width = x1 - x0
    return (x0 + round(width * start / length), y0, x0 + round(width * end / length), y1)


def ocr_words(line: Line) -> list[Token]:
    """The engine's words, or words split from the line text with estimated boxes."""
    if line.words:
        return [Token(w.text, w.bbox, confidence(w.confidence)) for w in line.words if w.text]
    return [
        Token(text, _estimate(line.bbox, start, end, len(line.text)), confidence(line.confidence))
        for text, start, end in _spans(line.text)
    ]


def line_tokens(line: Line, main_text: str) -> list[Token]:
    """The words of `main_text` placed on the line, aligned with the OCR words they replace."""
    words = ocr_words(line)
    if main_text == line.text:
        return words
    spans = _spans(main_text)
    matched: list[list[int]] = [[] for _ in spans]  # OCR word indexes behind each main word
    matcher = SequenceMatcher(None, [w.text for w in words], [s[0] for s in spans], False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1):
            for k in range(j2 - j1):
                matched[j1 + k].append(i1 + k)
        elif tag == "replace":
            matched[j1].extend(range(i1, i2))
        elif tag == "delete" and spans:
            # OCR words the correction dropped stay with the neighbouring corrected word.
            matched[j1 - 1 if j1 > 0 else 0].extend(range(i1, i2))
    tokens = []
    for (text, start, end), indexes in zip(spans, matched, strict=True):
        indexes.sort()
        if indexes:
            behind = [words[i] for i in indexes]
            bbox = union([w.bbox for w in behind])
            conf = round(sum(w.confidence for w in behind) / len(behind), 4)
            original = " ".join(w.text for w in behind)
        else:
            bbox = _estimate(line.bbox, start, end, len(main_text))
            conf, original = confidence(line.confidence), ""
        tokens.append(Token(text, bbox, conf, None if original == text else original))
    return tokens


def stage_description(document: Document) -> str:
    """`manuscribe X; engine NAME VERSION; corrector NAME VERSION` for generator metadata."""
    parts = [f"manuscribe {document.manuscribe_version or 'unknown'}"]
    parts.append(f"engine {document.engine.name} {document.engine.version}".rstrip())
    if document.corrector:
        parts.append(f"corrector {document.corrector.name} {document.corrector.version}".rstrip())
    return "; ".join(parts)


def correction_models(document: Document) -> list[str]:
    """The distinct models named by applied corrections, in first-seen order."""
    models: list[str] = []
    for page in document.pages:
        for block in page.blocks:
            model = block.correction.model if is_corrected(block) else ""
            if model and model not in models:
                models.append(model)
    return models


class IdMaker:
    """Unique XML IDs (NCName), preferring the model's own ids when they qualify."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, preferred: str, fallback: str) -> str:
        candidate = preferred if preferred and _NCNAME.match(preferred) else fallback
        base, n = candidate, 1
        while candidate in self.used:
            n += 1
            candidate = f"{base}_{n}"
        self.used.add(candidate)
        return candidate
