"""End to end: `manuscribe run` on real handwritten pages through the real default engine."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from manuscribe.cli import app
from manuscribe.model import Document
from manuscribe.pipeline import local_status, run
from manuscribe.settings import load_settings
from tests.conftest import SAMPLE_PAGES, ground_truth, text_page

runner = CliRunner()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, dataset):
    """Two real handwritten PDFs, a two-page TIFF made of two dataset scans, and three bad files."""
    folder = tmp_path_factory.mktemp("inputs")
    for page_id in SAMPLE_PAGES[:2]:
        shutil.copy(dataset / f"{page_id}.pdf", folder / f"{page_id}.pdf")
    scans = [text_page(["Archives nationales"]), text_page(["Second feuillet"])]
    scans[0].save(folder / "bundle.tif", save_all=True, append_images=scans[1:], dpi=(200, 200))
    (folder / "bad").mkdir()
    (folder / "bad" / "notes.pdf").write_text("not a pdf")
    data = (dataset / f"{SAMPLE_PAGES[0]}.pdf").read_bytes()
    (folder / "bad" / "cut.pdf").write_bytes(data[:300])
    return folder


@pytest.fixture(scope="module")
def first_run(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    result = runner.invoke(app, ["run", str(inputs), "--out", str(out), "--corrector", "none"])
    return out, result


def test_run_writes_json_and_txt_per_document(first_run, inputs):
    out, result = first_run
    for page_id in SAMPLE_PAGES[:2]:
        document = Document.model_validate_json((out / f"{page_id}.json").read_bytes())
        assert document.engine.name == "rapidocr" and document.engine.version
        assert len(document.engine.fingerprint) == 12 and document.manuscribe_version
        page = document.pages[0]
        assert page.blocks and page.width > 0 and page.dpi == 200
        assert all(b.language in ("fr", "en", "und", "de", "es", "it", "nl", "pt", "la", "ja")
                   for b in page.blocks)  # fmt: skip
        for block in page.blocks:
            x0, y0, x1, y1 = block.bbox
            assert 0 <= x0 < x1 <= page.width and 0 <= y0 < y1 <= page.height
            assert block.text == "\n".join(line.text for line in block.lines)
        text = (out / f"{page_id}.txt").read_text()
        assert text.strip() and text.strip() == page.text.strip()
    bundle = (out / "bundle.txt").read_text()
    assert bundle.count("\f") == 1  # two pages, one form feed
    assert "Archives" in bundle and "feuillet" in bundle


def test_language_is_tagged_on_real_pages(first_run):
    out, _ = first_run
    for page_id in SAMPLE_PAGES[:2]:
        expected = ground_truth(page_id)["language"]
        document = Document.model_validate_json((out / f"{page_id}.json").read_bytes())
        languages = [b.language for b in document.pages[0].blocks if len(b.text) > 80]
        assert languages and languages.count(expected) >= len(languages) / 2


def test_bad_inputs_fail_alone_with_clear_lines(first_run, inputs):
    out, result = first_run
    assert result.exit_code == 1, result.output
    bad = inputs / "bad" / "notes.pdf"
    assert f"{bad}: not a PDF, TIFF, JPEG, JPEG 2000 or PNG file" in result.output
    assert "cut.pdf: corrupt or truncated PDF" in result.output
    assert "Traceback" not in result.output
    status = local_status(out)
    assert status["state"] == "partial" and status["documents_failed"] == 2
    assert status["pages_done"] == status["pages_total"] == 4
    records = sorted((out / ".manuscribe" / "jobs" / "local" / "failures").iterdir())
    assert [p.name for p in records] == ["bad_cut.document.json", "bad_notes.document.json"]
    assert json.loads(records[0].read_text())["error"].startswith("corrupt or truncated PDF")


def test_status_command_reads_an_output_folder(first_run):
    out, _ = first_run
    result = runner.invoke(app, ["status", str(out), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["state"] == "partial" and payload["pages_failed"] == 0


def test_rerun_reuses_pages_and_changed_settings_recompute(first_run, inputs):
    out, _ = first_run
    again = runner.invoke(
        app, ["run", str(inputs), "--out", str(out), "--corrector", "none", "--formats", "txt"]
    )
    assert "reused 4 of 4 pages from the cache" in again.output
    settings = load_settings(corrector="none", dpi=150, formats=["json"])
    good = [inputs / f"{SAMPLE_PAGES[0]}.pdf"]
    summary = run(good, out, settings)
    assert summary.reused_pages == 0 and summary.pages == 1  # dpi changes what OCR sees
    assert run(good, out, settings).reused_pages == 1
    document = Document.model_validate_json((out / f"{SAMPLE_PAGES[0]}.json").read_bytes())
    assert document.pages[0].dpi == 150


def test_engine_that_cannot_start_is_one_clear_error(tmp_path, dataset):
    result = runner.invoke(
        app, ["run", str(dataset / f"{SAMPLE_PAGES[0]}.pdf"), "--out", str(tmp_path),
              "--engine", "nonesuch"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "unknown OCR engine 'nonesuch'" in result.output and "Traceback" not in result.output


def test_page_over_pixel_limit_is_a_page_failure(tmp_path, dataset, monkeypatch):
    monkeypatch.setenv("MANUSCRIBE_MAX_PIXELS", "1000000")
    settings = load_settings(corrector="none")
    summary = run([dataset / f"{SAMPLE_PAGES[0]}.pdf"], tmp_path, settings)
    assert [(f.page, f.stage) for f in summary.failures] == [(1, "recognise")]
    assert "over the limit" in summary.failures[0].error
    document = Document.model_validate_json(next(tmp_path.glob("*.json")).read_bytes())
    assert document.pages[0].error and not document.pages[0].blocks
