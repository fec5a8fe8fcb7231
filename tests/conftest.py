"""Shared fixtures: the real handwritten pages in ../shared (read in place) and small documents."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from tests.deploy_helpers import compose_config  # noqa: F401  (fixture of the deployment tests)
from tests.requires import in_ci

REPO = Path(__file__).resolve().parent.parent
DATASET = REPO.parent / "shared" / "datasets" / "handwriting"

# a few pages across the three collections, used by the end-to-end tests
SAMPLE_PAGES = [
    "poilus_AD78_0005-1",
    "stanford_lettre75",
    "mss19_boudreau-tessier_01R_P1S3SS1P019_001",
]

# Under CI nothing may be skipped: tests/requires.py fails a test whose dependency is missing, and
# the hooks below fail the session for any other skip (a stray pytest.skip or importorskip).
_SKIPPED: list[tuple[str, str]] = []
REQUIRES = str(Path(__file__).with_name("requires.py"))


def pytest_configure(config):
    if in_ci():
        # a module whose dependency is missing fails at collection; still run all the others
        config.option.continue_on_collection_errors = True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    _at_caller(report, *item.reportinfo()[:2])
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    _at_caller(report, collector.path, None)
    return report


def _at_caller(report, path, line) -> None:
    """A skip from tests/requires.py is reported at the test (or module) that needed the thing."""
    longrepr = report.longrepr
    if report.skipped and isinstance(longrepr, tuple) and longrepr[0] == REQUIRES:
        report.longrepr = (str(path), line + 1 if line is not None else None, longrepr[2])


def _note_skip(report) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _SKIPPED.append((report.nodeid, reason))


def pytest_collectreport(report):
    _note_skip(report)


def pytest_runtest_logreport(report):
    _note_skip(report)


def pytest_sessionfinish(session, exitstatus):
    if in_ci() and _SKIPPED and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if in_ci() and _SKIPPED:
        terminalreporter.section("skipped under CI: each counts as a failure", sep="=", red=True)
        for nodeid, reason in _SKIPPED:
            terminalreporter.line(f"{nodeid}: {reason}", red=True)


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
