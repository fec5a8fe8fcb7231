"""Shared fixtures: the real handwritten pages in ../shared (read in place) and small documents."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from tests.deploy_helpers import compose_config  # noqa: F401  (fixture of the deployment tests)

REPO = Path(__file__).resolve().parent.parent
DATASET = REPO.parent / "shared" / "datasets" / "handwriting"

# a few pages across the three collections, used by the end-to-end tests
SAMPLE_PAGES = [
    "poilus_AD78_0005-1",
    "stanford_lettre75",
    "mss19_boudreau-tessier_01R_P1S3SS1P019_001",
]


@pytest.fixture(scope="session")
def dataset() -> Path:
    assert DATASET.is_dir(), f"the handwritten dataset is expected at {DATASET}"
    return DATASET


def ground_truth(page_id: str) -> dict:
    return json.loads((DATASET / f"{page_id}.json").read_text())


def text_page(lines: list[str], size=(1200, 900), font_size=48) -> Image.Image:
    """A clean printed page with the given lines, for tests that need known text."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", font_size)
    except OSError:
        font = ImageFont.load_default(font_size)
    for n, line in enumerate(lines):
        draw.text((80, 80 + n * int(font_size * 1.8)), line, fill="black", font=font)
    return image


def image_bytes(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()
