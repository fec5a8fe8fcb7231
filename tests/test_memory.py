"""A long PDF streams page by page: peak memory does not grow with the page count."""

from __future__ import annotations

import pytest

from benchmarks.memory import make_pdf, peak_rss_mb


@pytest.mark.slow
def test_peak_rss_does_not_grow_with_page_count(tmp_path):
    short = peak_rss_mb(make_pdf(tmp_path / "short.pdf", 20), "tesseract")
    long = peak_rss_mb(make_pdf(tmp_path / "long.pdf", 300), "tesseract")
    # 15x the pages; allow noise from allocator growth, not a page-proportional rise
    assert long < short * 1.15 + 30, (short, long)
