"""The correction seam in the embedded runner, with a real (tiny, random) Qwen2 model.

The tiny model writes gibberish, so this checks the plumbing and the guards, not the quality:
every block gets an audited correction, the OCR text is kept, and the cache keys the correction on
the corrector's settings while reusing the OCR.
"""

from __future__ import annotations

from manuscribe.model import Document
from manuscribe.pipeline import run
from manuscribe.settings import load_settings
from tests.conftest import SAMPLE_PAGES
from tests.requires import require_module
from tests.tiny_models import tiny_qwen  # noqa: F401  (session fixture)

require_module("transformers", "pip install -e '.[llm]' (or make install-test)")


def test_transformers_corrector_through_the_pipeline(tmp_path, dataset, tiny_qwen):  # noqa: F811
    source = [dataset / f"{SAMPLE_PAGES[1]}.pdf"]
    plain = run(source, tmp_path, load_settings(corrector="none", formats=["json"]))
    assert plain.pages == 1 and not plain.failures
    ocr_only = Document.model_validate_json((tmp_path / f"{SAMPLE_PAGES[1]}.json").read_bytes())
    assert ocr_only.corrector is None

    settings = load_settings(corrector="transformers", model=str(tiny_qwen), formats=["json"])
    corrected = run(source, tmp_path, settings)
    assert corrected.reused_pages == 1  # a new corrector keeps the OCR
    document = Document.model_validate_json((tmp_path / f"{SAMPLE_PAGES[1]}.json").read_bytes())
    assert document.corrector is not None and document.corrector.name == "transformers"
    assert document.corrector.fingerprint != document.engine.fingerprint
    before = [b.text for b in ocr_only.pages[0].blocks]
    after = document.pages[0].blocks
    assert [b.text for b in after] == before  # the original OCR is never overwritten
    for block in after:
        assert block.correction is not None
        assert block.correction.status in ("applied", "rejected", "skipped")
        assert block.correction.reason or block.correction.status == "applied"
        if block.correction.status != "applied":
            assert block.correction.text is None and block.best_text == block.text
    # random weights produce gibberish: the guards must have kept it out
    assert all(b.correction.status != "applied" for b in after)
