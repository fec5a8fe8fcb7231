"""The aspose-cloud engine, driven through the real aspose-ocr-cloud SDK against a loopback stub."""

from __future__ import annotations

import base64
import io
import logging
import time

import pytest
from PIL import Image

from tests.requires import require_module

require_module("aspose_ocr_cloud", "pip install -e '.[aspose]' (or make install-test)")

from manuscribe.engines import create_engine  # noqa: E402
from manuscribe.engines.aspose_auth import RateLimiter  # noqa: E402
from manuscribe.engines.aspose_cloud import AsposeCloudEngine, AsposePageError  # noqa: E402
from manuscribe.engines.base import EngineError, Hints  # noqa: E402
from manuscribe.settings import Settings  # noqa: E402

try:  # tests/ as a package or as a plain folder on sys.path
    from tests.aspose_stub import IMAGE, PDF, TOKEN, AsposeStub
except ImportError:  # pragma: no cover
    from aspose_stub import IMAGE, PDF, TOKEN, AsposeStub

CLIENT_ID = "0f6b-stub-client"
SECRET = "s3cr3t-DO-NOT-LEAK-7f1c9a"


@pytest.fixture
def stub():
    with AsposeStub(CLIENT_ID, SECRET) as server:
        yield server


@pytest.fixture(autouse=True)
def credentials(monkeypatch):
    monkeypatch.setenv("ASPOSE_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("ASPOSE_CLIENT_SECRET", SECRET)


@pytest.fixture(autouse=True)
def all_logs(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


def engine_for(stub: AsposeStub, **kw) -> AsposeCloudEngine:
    options = dict(
        poll_interval=0.01,
        poll_timeout=5,
        retries=3,
        backoff=0.01,
        request_timeout=5,
        requests_per_second=0,
    )
    options.update(kw)
    return AsposeCloudEngine(stub.base_url, **options)


def page(width: int = 1000, height: int = 1400) -> Image.Image:
    return Image.new("L", (width, height), 255)


def near(box, expected, size, tol=3):
    w, h = size
    want = (expected[0] * w, expected[1] * h, expected[2] * w, expected[3] * h)
    return all(abs(a - b) <= tol for a, b in zip(box, want, strict=True))


def assert_no_secret(caplog, *texts):
    assert SECRET not in caplog.text
    for text in texts:
        assert SECRET not in text


def test_page_becomes_lines_blocks_boxes_and_confidences(stub):
    engine = engine_for(stub)
    result = engine.recognize(page(), Hints())

    assert [ln.text for ln in result.lines] == [
        "Dear Sir,",
        "I write to you from Lyon",
        "Yours faithfully",
    ]
    assert result.blocks == [[0, 1], [2]]
    assert result.languages == {}  # the service names none: the pipeline identifies them
    first = result.lines[0]
    assert near(first.bbox, (0.10, 0.08, 0.40, 0.12), (1000, 1400))
    assert first.confidence == pytest.approx(0.93)
    assert [w.text for w in first.words] == ["Dear", "Sir,"]
    assert near(first.words[1].bbox, (0.25, 0.08, 0.40, 0.12), (1000, 1400))
    assert result.lines[2].confidence == 0.5  # no x_wconf given: the neutral value

    # what went over the wire: one token, a PNG of the page, handwriting mode, hOCR wanted
    assert len(stub.calls("POST", TOKEN)) == 1
    (submit,) = stub.calls("POST", IMAGE)
    assert submit.bearer and submit.bearer.startswith("tok-")
    settings = submit.body["settings"]
    assert settings["language"] == "HWT_ENG"
    assert settings["resultType"] == "Hocr"
    assert settings["makeSkewCorrect"] is False
    sent = Image.open(io.BytesIO(base64.b64decode(submit.body["image"])))
    assert (sent.format, sent.size) == ("PNG", (1000, 1400))
    engine.close()


def test_rescaled_page_boxes_come_back_in_page_pixels(stub):
    engine = engine_for(stub, max_side=500)
    result = engine.recognize(page(2000, 2800), Hints())

    sent = Image.open(io.BytesIO(base64.b64decode(stub.calls("POST", IMAGE)[0].body["image"])))
    assert sent.size == (357, 500)
    for line, (_, box, _) in zip(result.lines, [ln for b in stub.page for ln in b], strict=True):
        assert near(line.bbox, box, (2000, 2800), tol=8)
        assert 0 <= line.bbox[0] < line.bbox[2] <= 2000


def test_hocr_without_regions_leaves_grouping_to_the_pipeline(stub):
    # lines straight under the page, one inside a float, confidence on the line, page offset
    stub.hocr_text = """<html><body>
      <div class="ocr_page" title="bbox 100 100 600 800; ppageno 0">
        <span class="ocr_line" title="bbox 150 200 350 240; x_wconf 70">Monsieur le Maire</span>
        <div class="ocr_textfloat" title="bbox 400 700 600 800">
          <span class="ocr_line" title="bbox 400 700 600 740">
            <span class="ocrx_word" title="bbox 400 700 480 740; x_wconf 90">signé</span>
            <span class="ocrx_word" title="bbox 500 700 600 740; x_wconf 50">Dupont</span>
          </span>
        </div>
        <span class="ocr_line" title="x_wconf 90"></span>
      </div></body></html>"""
    result = engine_for(stub).recognize(page(1000, 1400), Hints())
    assert result.blocks == []
    assert [ln.text for ln in result.lines] == ["Monsieur le Maire", "signé Dupont"]
    assert result.lines[0].bbox == (100, 200, 500, 280)  # (x - 100) * 2, (y - 100) * 2
    assert result.lines[0].confidence == pytest.approx(0.7)
    assert result.lines[1].confidence == pytest.approx(0.7)  # mean of its words
    assert result.lines[1].bbox == (600, 1200, 1000, 1280)


def test_slow_task_is_polled_until_done(stub):
    stub.pending_polls = 3
    result = engine_for(stub).recognize(page(), Hints())
    assert len(result.lines) == 3
    assert len(stub.calls("GET", IMAGE)) == 4


def test_task_past_its_deadline_fails_the_page_and_is_cancelled(stub):
    stub.pending_polls = 10**6
    engine = engine_for(stub, poll_timeout=0.3, poll_interval=0.05)
    started = time.monotonic()
    with pytest.raises(AsposePageError, match="did not finish within 0.3 s"):
        engine.recognize(page(), Hints())
    assert time.monotonic() - started < 3
    assert len(stub.calls("DELETE", IMAGE)) == 1
    assert all(t.cancelled for t in stub.tasks.values())


@pytest.mark.parametrize("status", [400, 401])
def test_refused_credentials_fail_at_start_without_showing_the_secret(
    stub, monkeypatch, caplog, status
):
    stub.token_status = status
    monkeypatch.setenv("ASPOSE_CLIENT_SECRET", SECRET + "-wrong")
    with pytest.raises(EngineError, match="refused the credentials") as info:
        engine_for(stub)
    assert f"HTTP {status}" in str(info.value)
    assert "ASPOSE_CLIENT_SECRET" in str(info.value)
    assert not stub.calls("POST", IMAGE)
    assert_no_secret(caplog, str(info.value), repr(info.value))
    assert SECRET not in str(info.value.__cause__ or "")


def test_missing_credentials_fail_at_start(stub, monkeypatch):
    monkeypatch.delenv("ASPOSE_CLIENT_ID")
    monkeypatch.delenv("ASPOSE_CLIENT_SECRET")
    with pytest.raises(EngineError, match="ASPOSE_CLIENT_ID and ASPOSE_CLIENT_SECRET"):
        engine_for(stub)
    assert not stub.requests


def test_unreachable_token_endpoint_fails_at_start(stub):
    stub.fail("POST", TOKEN, 503, times=10)
    with pytest.raises(EngineError, match="HTTP 503 after 3 attempts"):
        engine_for(stub)


def test_unknown_language_fails_at_start(stub):
    with pytest.raises(EngineError, match="unknown Aspose language"):
        engine_for(stub, language="Klingon")


def test_stale_token_is_replaced_once_on_401(stub):
    engine = engine_for(stub)
    stub.revoke_tokens()
    assert len(engine.recognize(page(), Hints()).lines) == 3
    assert len(stub.calls("POST", TOKEN)) == 2
    assert stub.refused == [401]


def test_401_with_fresh_tokens_is_fatal(stub):
    engine = engine_for(stub)
    stub.fail("POST", IMAGE, 401, times=5)
    with pytest.raises(EngineError, match="rejects freshly issued access tokens"):
        engine.recognize(page(), Hints())


def test_token_is_refreshed_before_it_expires(stub):
    stub.token_ttl = 1  # refreshed at half-life for short tokens
    engine = engine_for(stub)
    time.sleep(0.6)
    engine.recognize(page(), Hints())
    assert len(stub.calls("POST", TOKEN)) >= 2  # more on a slow machine: short tokens
    assert stub.refused == []  # never sent an expired token


def test_429_is_retried_after_retry_after(stub):
    engine = engine_for(stub)
    stub.fail("POST", IMAGE, 429, times=1, headers={"Retry-After": "1"})
    started = time.monotonic()
    assert len(engine.recognize(page(), Hints()).lines) == 3
    assert time.monotonic() - started >= 0.95  # waited as told, not our 10 ms backoff
    assert len(stub.calls("POST", IMAGE)) == 2


def test_429_that_never_ends_is_a_page_failure(stub, caplog):
    engine = engine_for(stub)
    stub.fail("POST", IMAGE, 429, times=100, headers={"Retry-After": "0"})
    with pytest.raises(AsposePageError, match="submit: HTTP 429 after 3 tries") as info:
        engine.recognize(page(), Hints())
    assert len(stub.calls("POST", IMAGE)) == 3
    assert_no_secret(caplog, str(info.value))


def test_500_on_poll_is_retried(stub):
    engine = engine_for(stub)
    stub.fail("GET", IMAGE, 500, times=2)
    assert len(engine.recognize(page(), Hints()).lines) == 3
    assert len(stub.calls("GET", IMAGE)) == 3


def test_500_that_never_ends_is_a_page_failure_and_the_next_page_still_works(stub):
    engine = engine_for(stub)
    stub.fail("GET", IMAGE, 500, times=3)
    with pytest.raises(AsposePageError, match="poll: HTTP 500 after 3 tries"):
        engine.recognize(page(), Hints())
    assert len(engine.recognize(page(), Hints()).lines) == 3


def test_request_timeout_is_retried(stub):
    engine = engine_for(stub, request_timeout=0.3)
    stub.fail("POST", IMAGE, None, times=1, delay=1.0)
    assert len(engine.recognize(page(), Hints()).lines) == 3
    assert len(stub.calls("POST", IMAGE)) == 2


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("bad-base64", "not valid hOCR"),
        ("not-hocr", "not hOCR"),
        ("no-results", "without a result"),
        ("garbage-json", "malformed response"),
        ("unknown-status", "malformed response"),
        ("task-error", "task Error: Image could not be recognised"),
    ],
)
def test_malformed_or_failed_result_is_a_page_failure(stub, mode, message):
    stub.result_mode = mode
    engine = engine_for(stub)
    with pytest.raises(AsposePageError, match=message):
        engine.recognize(page(), Hints())
    assert len(stub.calls("GET", IMAGE)) == 1  # deterministic: not retried


def test_requests_are_rate_limited(stub):
    stub.pending_polls = 3
    engine = engine_for(stub, requests_per_second=20)
    engine.recognize(page(), Hints())
    times = [r.at for r in stub.requests]
    assert len(times) == 6  # token, submit, 4 polls
    assert times[-1] - times[0] >= 5 / 20 * 0.9


def test_rate_limiter_spaces_calls():
    now = [0.0]
    limiter = RateLimiter(4, clock=lambda: now[0])
    limiter.acquire()
    assert limiter._next == pytest.approx(0.25)
    limiter.acquire()  # sleeps 0.25 s on the real clock
    assert limiter._next == pytest.approx(0.5)


def test_secret_never_reaches_logs_errors_or_settings(stub, caplog):
    engine = engine_for(stub)
    engine.recognize(page(), Hints())
    stub.fail("POST", IMAGE, 500, times=3)
    with pytest.raises(AsposePageError) as info:
        engine.recognize(page(), Hints())
    assert_no_secret(caplog, str(info.value), repr(engine.settings()), repr(engine._auth))
    assert_no_secret(caplog, repr(vars(engine)), repr(vars(engine._auth)))
    assert "Aspose" in caplog.text  # the retries were logged, just not the secret


def test_pdf_pages_map_to_their_own_sizes(stub):
    buf = io.BytesIO()
    first, second = Image.new("L", (600, 800), 255), Image.new("L", (800, 600), 255)
    first.save(buf, format="PDF", save_all=True, append_images=[second], resolution=72)
    engine = engine_for(stub)
    results = engine.recognize_pdf(buf.getvalue(), [(1250, 1667), (1667, 1250)])
    assert len(results) == 2
    assert near(results[1].lines[0].bbox, (0.10, 0.08, 0.40, 0.12), (1667, 1250), tol=4)
    assert stub.calls("POST", PDF)[0].body["settings"]["language"] == "HWT_ENG"


def test_create_engine_reads_settings_and_environment(stub):
    engine = create_engine("aspose-cloud", Settings(aspose_base_url=stub.base_url))
    assert isinstance(engine, AsposeCloudEngine)
    assert engine.name == "aspose-cloud" and engine.version
    assert engine.settings()["language"] == "HWT_ENG"
    assert len(engine.recognize(page(), Hints()).lines) == 3
    engine.close()
