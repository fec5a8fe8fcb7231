"""The kraken engine on real dev pages: baseline segmentation (kraken's bundled blla model),
reading with the project's recogniser or with a kraken model, what lands in JSON, ALTO and PAGE.

The pages are segmented once per module (kraken's segmenter takes tens of seconds a page on
these CPUs) and every check reads that run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from lxml import etree
from PIL import Image

from tests.requires import require_module

require_module("kraken", "make install-test (pip install -e '.[kraken]')")

from manuscribe.engines import EngineError, Hints, create_engine  # noqa: E402
from manuscribe.engines.kraken_engine import resolve_model  # noqa: E402
from manuscribe.evaluation import evaluate_folder  # noqa: E402
from manuscribe.model import Document  # noqa: E402
from manuscribe.pipeline import run  # noqa: E402
from manuscribe.settings import load_settings  # noqa: E402
from manuscribe.stages import engine_info  # noqa: E402
from tests.test_quality import QUALITY_PAGES  # noqa: E402

SCHEMAS = Path(__file__).resolve().parents[2] / "shared" / "schemas"
ALTO = "{http://www.loc.gov/standards/alto/ns-v4#}"
PC = "{http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15}"

# the quality-test pages, the blue-paper page the default engine loses lines on, and one more
PAGES = [*QUALITY_PAGES, "stanford_i092", "poilus_AD78_0005-1"]
LINE_RECALL = 0.97  # measured on these pages: 0.987, see docs/kraken.md (the default engine: 0.886)
LINE_CER = 0.25  # the default recogniser reading kraken lines: 0.131 with v5 (docs/kraken.md)


@pytest.fixture(scope="module")
def kraken_run(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kraken")
    settings = load_settings(
        engine="kraken", corrector="none", formats=["json", "alto", "page"], jobs=1
    )
    summary = run([dataset / f"{page}.pdf" for page in PAGES], out, settings)
    assert summary.pages == len(PAGES) and not summary.failures, summary.failures
    return out


def _documents(out: Path) -> list[Document]:
    return [Document.model_validate_json((out / f"{p}.json").read_bytes()) for p in PAGES]


def test_kraken_finds_the_written_lines(kraken_run, dataset):
    report = evaluate_folder(kraken_run, dataset)
    assert len(report["pages"]) == len(PAGES)
    overall = report["summary"]["all"]["before"]
    print("line recall", overall["detection"], "line CER", overall["lines"]["cer"])
    assert overall["detection"]["recall"] >= LINE_RECALL, overall["detection"]
    blue = next(p for p in report["pages"] if p["id"] == "stanford_i092")["before"]
    assert blue["detection"]["recall"] >= 0.9, blue["detection"]
    # the default recogniser reads kraken's line images (no kraken recognition model given)
    assert overall["lines"]["cer"] <= LINE_CER, overall["lines"]


def test_lines_carry_baselines_and_polygons_inside_their_boxes(kraken_run):
    for document in _documents(kraken_run):
        assert document.engine.name == "kraken"
        assert document.engine.settings["engine"]["seg"] == "blla (bundled with kraken)"
        page = document.pages[0]
        lines = [line for block in page.blocks for line in block.lines]
        assert len(lines) >= 5, document.name
        for line in lines:
            assert len(line.baseline) >= 2 and len(line.polygon) >= 3, line
            x0, y0, x1, y1 = line.bbox
            for x, y in line.baseline + line.polygon:
                assert x0 <= x <= x1 and y0 <= y <= y1, (line.bbox, x, y)
                assert 0 <= x <= page.width and 0 <= y <= page.height
            assert 0.0 <= line.confidence <= 1.0 and line.text.strip()
        # the baseline runs left to right, below the top quarter of its line (lines slant, and
        # descenders reach below the baseline)
        for line in lines:
            (bx0, _), (bx1, _) = line.baseline[0], line.baseline[-1]
            assert bx1 > bx0
            mid = sum(y for _, y in line.baseline) / len(line.baseline)
            assert mid >= line.bbox[1] + 0.25 * (line.bbox[3] - line.bbox[1]), line


def test_alto_and_page_with_baselines_are_schema_valid(kraken_run):
    alto_schema = etree.XMLSchema(etree.parse(str(SCHEMAS / "alto-4-4.xsd")))
    page_schema = etree.XMLSchema(etree.parse(str(SCHEMAS / "pagecontent-2019-07-15.xsd")))
    for document, name in zip(_documents(kraken_run), PAGES, strict=True):
        n_lines = sum(len(b.lines) for p in document.pages for b in p.blocks)
        alto = etree.parse(str(kraken_run / f"{name}.alto.xml"))
        alto_schema.assertValid(alto)
        text_lines = alto.findall(f".//{ALTO}TextLine")
        assert len(text_lines) == n_lines
        assert all(tl.get("BASELINE") and tl.find(f"{ALTO}Shape/{ALTO}Polygon") is not None
                   for tl in text_lines)  # fmt: skip
        page = etree.parse(str(kraken_run / f"{name}.page.xml"))
        page_schema.assertValid(page)
        baselines = page.findall(f".//{PC}TextLine/{PC}Baseline")
        assert len(baselines) == n_lines
        for text_line in page.findall(f".//{PC}TextLine"):  # the polygon, not a rectangle
            points = text_line.find(f"{PC}Coords").get("points").split()
            assert len(points) >= 3


def test_reads_with_a_kraken_recognition_model(tmp_path, dataset, monkeypatch):
    """A kraken model trained here for a few steps (kraken's own training API) is loaded by the
    engine and reads the lines kraken found; its identity is in the OCR fingerprint."""
    import kraken.lib.ctc_decoder as ctc

    from tests.kraken_fixtures import train_tiny_kraken_model

    greedy = ctc.greedy_decoder

    def no_blank(outputs, seq_lens=None):
        """A model trained for a few steps emits only CTC blanks (label 0); without them it
        yields characters, each with its softmax confidence, through the engine's own path."""
        outputs = outputs.clone()
        outputs[..., 0, :] = 0
        return greedy(outputs, seq_lens)

    monkeypatch.setattr(ctc, "greedy_decoder", no_blank)  # what RecognitionInferenceConfig takes

    gt = json.loads((dataset / "poilus_AD78_0005-1.json").read_text())
    image = Image.open(dataset / "poilus_AD78_0005-1.jpg").convert("RGB")
    lines = [(image.crop(tuple(ln["bbox"])), ln["text"]) for ln in gt["lines"] if ln["text"]]
    model_path = train_tiny_kraken_model(lines[:24], tmp_path / "model")
    settings = load_settings(engine="kraken", ocr_model=str(model_path), threads=1)
    engine = create_engine("kraken", settings)
    info = engine_info(engine, settings)
    assert engine.settings()["rec"]["sha256"] == resolve_model(str(model_path)).sha256
    default_settings = load_settings(engine="kraken", threads=1)
    default_info = engine_info(create_engine("kraken", default_settings), default_settings)
    assert info.fingerprint != default_info.fingerprint
    result = engine.recognize(image, Hints())
    engine.close()
    assert len(result.lines) >= 10  # every line kraken found, read by the kraken model
    charset = {c for _, text in lines[:24] for c in text}
    for line in result.lines:
        assert set(line.text) - {" "} <= charset, line.text  # its codec's characters only
        assert 0.0 < line.confidence <= 1.0 and len(line.baseline) >= 2


def test_how_the_reader_decodes_is_in_the_fingerprint():
    """kraken's lines read by the default recogniser: with and without its language model are
    two different OCR results, never reused for one another."""
    on = load_settings(engine="kraken", threads=1)
    off = load_settings(engine="kraken", threads=1, ocr_language_model=False)
    engines = [create_engine("kraken", s) for s in (on, off)]
    assert [e.settings()["rec"]["decoder"] for e in engines] == ["beam+charlm", "greedy"]
    fingerprints = {engine_info(e, s).fingerprint for e, s in zip(engines, (on, off), strict=True)}
    assert len(fingerprints) == 2


def test_an_unreadable_kraken_model_is_an_engine_error_naming_it(tmp_path):
    bad = tmp_path / "broken.mlmodel"
    bad.write_bytes(b"this is not a model")
    with pytest.raises(EngineError, match="broken.mlmodel"):
        create_engine("kraken", load_settings(engine="kraken", ocr_model=str(bad)))
    with pytest.raises(EngineError, match="no such file"):
        create_engine("kraken", load_settings(engine="kraken", seg_model=str(tmp_path / "x")))


def test_a_doi_that_cannot_be_fetched_is_an_error_naming_the_doi(tmp_path):
    doi = "10.5281/zenodo.0000001"  # no such record; and this machine has no internet
    with pytest.raises(EngineError) as caught:
        resolve_model(f"doi:{doi}", cache_dir=tmp_path)
    assert doi in str(caught.value) and "could not download" in str(caught.value)


def test_a_segmentation_model_from_storage_is_fetched_and_fingerprinted(tmp_path):
    """The worker path: a job names the segmenter by storage key (as `submit` uploads it)."""
    from importlib import resources

    from manuscribe.storage.local import LocalStorage
    from producer.submit import _share_ocr_model

    storage = LocalStorage(tmp_path / "store")
    local = tmp_path / "blla-copy.mlmodel"
    shutil.copy(resources.files("kraken").joinpath("blla.mlmodel"), local)
    spec = _share_ocr_model(str(local), storage, "--seg-model")
    assert spec.startswith("storage:models/") and spec.endswith(".mlmodel")
    fetched = resolve_model(spec, storage, tmp_path / "cache")
    assert fetched.path.parent == tmp_path / "cache"
    assert fetched.sha256 == resolve_model(str(local)).sha256


def _kline(x0: int, x1: int, y: int, height: int = 40, region: str = "r1"):
    from kraken.containers import BaselineLine

    return BaselineLine(
        id=f"{x0}-{x1}-{y}-{height}",
        baseline=[(x0, y), (x1, y)],
        boundary=[(x0, y - height), (x1, y - height), (x1, y + 10), (x0, y + 10)],
        regions=[region],
    )


def test_line_pieces_tells_fragments_from_merged_lines():
    from manuscribe.engines.kraken_engine import line_pieces

    whole = [_kline(100, 1000, 200), _kline(100, 1000, 300)]
    pieces = [_kline(100, 380, 200), _kline(400, 680, 202), _kline(700, 1000, 198),
              _kline(100, 500, 300), _kline(520, 1000, 301)]  # fmt: skip
    assert line_pieces(pieces, whole) == [[0, 1, 2], [3, 4]]
    assert line_pieces(whole, whole) == [[0], [1]]  # the same lines
    # a coarse view that merged two stacked lines into one tall line: the upper one is not
    # along its baseline, so it is not a piece of it
    merged = [_kline(100, 1000, 300, height=150)]
    assert line_pieces(whole, merged) == [[1]]
    assert line_pieces([], whole) == [[], []]


def test_merge_views_replaces_only_the_lines_cut_into_pieces():
    from manuscribe.engines.kraken_engine import merge_views

    # the fine view: a heading cut in three, then two whole lines of small script
    fine = [_kline(100, 380, 200, region="a"), _kline(400, 680, 202, region="a"),
            _kline(700, 1000, 198, region="a"), _kline(100, 1000, 300, region="b"),
            _kline(100, 1000, 360, region="b")]  # fmt: skip
    # the coarse view: the heading whole, the small lines merged into one tall line
    coarse = [_kline(100, 1000, 200, region="x"), _kline(100, 1000, 360, height=100, region="y")]
    merged = merge_views(fine, coarse)
    assert [ln.id for ln in merged] == [coarse[0].id, fine[3].id, fine[4].id]
    assert merged[0].regions == ["a"]  # in the fine view's region and reading position
    # a coarse line over two stacked lines of the fine view is not a whole of their pieces
    tall = [_kline(100, 1000, 360, height=150)]
    assert [ln.id for ln in merge_views(fine[3:], tall)] == [fine[3].id, fine[4].id]
    assert merge_views(fine, []) == fine
    assert merge_views([], coarse) == []


def test_script_height_is_measured_in_the_segmenters_view():
    from manuscribe.engines.kraken_engine import LARGE_SCRIPT, script_height

    lines = [_kline(100, 1000, 200, height=40), _kline(100, 1000, 300, height=40)]  # 50 px tall
    assert script_height(lines, 900) == 100  # blla sees a 900 px page at 1,800 px
    assert script_height(lines, 1800) == 50
    assert script_height(lines, 900) >= LARGE_SCRIPT > script_height(lines, 1800)
    assert script_height([], 900) == 0


def test_fragmented_when_most_lines_were_cut():
    from manuscribe.engines.kraken_engine import fragmented

    whole = [_kline(100, 1000, 200), _kline(100, 1000, 300), _kline(100, 1000, 400)]
    cut = [_kline(100, 500, 200), _kline(520, 1000, 200), _kline(100, 500, 300),
           _kline(520, 1000, 300), _kline(100, 1000, 400)]  # fmt: skip
    assert fragmented(cut, whole)  # two of three lines in pieces
    assert not fragmented(cut[2:], whole)  # one of two found lines in pieces
    assert not fragmented(whole, whole) and not fragmented([], whole)
