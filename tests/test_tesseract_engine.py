"""The tesseract engine against Debian's models: blocks, words and confidences on real input."""

from __future__ import annotations

import pytest

from manuscribe.engines import EngineError, Hints, create_engine
from manuscribe.settings import load_settings
from tests.conftest import text_page
from tests.requires import require_module

require_module(
    "tesserocr",
    "apt-get install libtesseract-dev tesseract-ocr-fra; pip install -e '.[tesseract]' "
    "(or make install-test)",
)


@pytest.fixture(scope="module")
def engine():
    engine = create_engine("tesseract", load_settings(tesseract_lang="fra+eng"))
    yield engine
    engine.close()


def test_printed_page_gives_blocks_lines_and_word_confidences(engine):
    page = text_page(["Registre des actes", "de l'état civil", "", "", "Archives nationales"])
    result = engine.recognize(page, Hints(dpi=300))
    text = " ".join(line.text for line in result.lines)
    assert "Registre" in text and "Archives" in text and "nationales" in text
    assert len(result.blocks) == 2  # the blank gap splits the page into two blocks
    assert sorted(i for block in result.blocks for i in block) == list(range(len(result.lines)))
    for line in result.lines:
        assert line.words and 0 <= line.confidence <= 1
        x0, y0, x1, y1 = line.bbox
        assert 0 <= x0 < x1 <= page.width and 0 <= y0 < y1 <= page.height


def test_page_where_tesseract_finds_empty_elements_does_not_fail(engine, dataset):
    from PIL import Image

    # real handwriting on which tesseract returns elements without text
    scan = Image.open(dataset / "stanford_lettre75.jpg").convert("RGB")
    result = engine.recognize(scan, Hints(dpi=200))
    assert all(line.text for line in result.lines)


def test_missing_language_model_is_a_start_error():
    with pytest.raises(EngineError, match="tesseract language data missing: xyz"):
        create_engine("tesseract", load_settings(tesseract_lang="eng+xyz"))
