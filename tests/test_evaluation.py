"""CER / WER scoring: normalisation, line alignment that ignores untranscribed text, reports."""

from __future__ import annotations

import json
from pathlib import Path

from manuscribe.evaluation import align_lines, evaluate_folder, normalise, score_page
from manuscribe.model import Block, Correction, Document, Line, Page, StageInfo


def test_normalise_follows_the_dataset_readme():
    assert normalise("M^r  Dupont’s >mot< ⟦illisible⟧\n") == "Mr Dupont's mot illisible"


def _page(lines: list[tuple[tuple, str]], width=2000, correction=None) -> Page:
    block = Block(
        id="p1-b1", bbox=(0, 0, width, 3000), confidence=0.9, correction=correction,
        lines=[Line(bbox=b, text=t, confidence=0.9) for b, t in lines],
        text="\n".join(t for _, t in lines),
    )  # fmt: skip
    return Page(number=1, width=width, height=3000, dpi=300, blocks=[block])


GT = {
    "id": "x", "language": "fr", "width": 1000, "height": 1500,
    "lines": [{"text": "Mon cher Mari", "bbox": [50, 100, 500, 150]},
              {"text": "J’ai reçu ta lettre", "bbox": [50, 160, 600, 210]}],
}  # fmt: skip


def test_line_alignment_scales_boxes_and_ignores_stamps():
    # predictions at 2x the ground truth's resolution; one stamp far from any GT line
    page = _page([((100, 200, 1000, 300), "Mon cher Mari"),
                  ((100, 320, 700, 420), "J'ai reçu"), ((720, 320, 1200, 420), "ta lettre"),
                  ((1500, 2800, 1900, 2900), "ARCHIVES NATIONALES")])  # fmt: skip
    aligned = align_lines(GT["lines"], [(ln.bbox, ln.text) for ln in page.blocks[0].lines], 0.5)
    assert aligned == ["Mon cher Mari", "J'ai reçu ta lettre"]
    scores = score_page(page, GT, corrected=False)
    assert scores["lines"]["char_errors"] == 0
    assert scores["full"]["char_errors"] > 0  # the stamp counts against full-page CER only


def test_before_and_after_correction(tmp_path):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    (gt_dir / "x.json").write_text(json.dumps(GT))
    fixed = Correction(text="Mon cher Mari\nJ'ai reçu ta lettre", status="applied", model="m")
    lines = [((100, 200, 1000, 300), "Mon cher Mar"), ((100, 320, 1200, 420), "J'ai recu ta lettr")]
    page = _page(lines, correction=fixed)
    info = StageInfo(name="e", version="1", fingerprint="f")
    document = Document(id="0" * 64, name="x", source="x.pdf", media_type="application/pdf",
                        pages=[page], engine=info)  # fmt: skip
    (pred_dir / "x.json").write_text(document.model_dump_json())
    report = evaluate_folder(pred_dir, gt_dir)
    summary = report["summary"]["fr"]
    assert summary["before"]["lines"]["cer"] == round(3 / 32, 4)
    assert summary["after"]["lines"]["cer"] == 0.0
    assert report["corrections"] == {"fr": {"applied": 1}}


def test_loose_view_ignores_case_and_punctuation_and_recall_counts_found_lines():
    # the first GT line found (read in upper case, without punctuation), the second not at all:
    # the predicted box covers a third of it
    page = _page([((100, 200, 1000, 300), "MON CHER MARI"), ((100, 320, 500, 420), "J'ai")])
    scores = score_page(page, GT, corrected=False)
    assert scores["lines"]["char_errors"] > 10  # strict: every letter's case counts
    loose = scores["lines_loose"]
    assert loose["chars"] == len("mon cher mari") + len("j ai reçu ta lettre")
    assert loose["char_errors"] == len(" reçu ta lettre")
    assert scores["detection"] == {"found": 1, "lines": 2}


def test_loose_view_counts_the_characters_of_lines_nothing_was_read_into():
    both = _page([((100, 200, 1000, 300), "Mon chor Mari"), ((100, 320, 500, 420), "J'ai")])
    read_badly = score_page(both, GT, corrected=False)
    assert read_badly["lines_loose"]["missed_chars"] == 0  # both lines got a reading
    only_first = score_page(_page([((100, 200, 1000, 300), "Mon chor Mari")]), GT, corrected=False)
    loose = only_first["lines_loose"]
    assert loose["missed_chars"] == len("j ai reçu ta lettre")
    assert loose["char_errors"] == 1 + loose["missed_chars"]  # the misreading, then the lost line


def test_alto_and_page_ground_truth_score_as_the_datasets_json(dataset, tmp_path):
    """A collection's own eScriptorium / Transkribus export is ground truth as it is: the same
    predictions score the same against the dev page's JSON, its ALTO and its PAGE XML (without
    the image: scoring needs only the page size), and an unreadable XML is reported."""
    from typer.testing import CliRunner

    from manuscribe.cli import app
    from tests.gt_fixtures import write_alto, write_page_xml

    page_id = "poilus_AD78_0005-1"
    gt = json.loads((dataset / f"{page_id}.json").read_text())
    lines = [(tuple(2 * v for v in line["bbox"]), line["text"][:-2]) for line in gt["lines"]]
    page = _page(lines, width=2 * gt["width"])
    info = StageInfo(name="e", version="1", fingerprint="f")
    pred_dir = tmp_path / "pred"
    pred_dir.mkdir()
    for name in (page_id, "scan-2", "broken"):
        document = Document(id="0" * 64, name=name, source=f"{name}.jpg", media_type="image/jpeg",
                            pages=[page], engine=info)  # fmt: skip
        (pred_dir / f"{name}.json").write_text(document.model_dump_json())

    alto, pagexml = tmp_path / "alto", tmp_path / "transkribus" / "page"
    alto.mkdir()
    pagexml.mkdir(parents=True)
    write_alto(gt, f"{page_id}.jpg", alto / f"{page_id}.xml")
    source = (alto / f"{page_id}.xml").read_text()
    (alto / f"{page_id}.xml").write_text(source.replace('ID="b1"', 'ID="b1" LANG="fre"'))
    (alto / "broken.xml").write_text("<alto><Layout><Page")
    write_page_xml(gt, f"{page_id}.jpg", pagexml / f"{page_id}.xml")
    source = (pagexml / f"{page_id}.xml").read_text()
    (pagexml / f"{page_id}.xml").write_text(
        source.replace("<Page ", '<Page primaryLanguage="French" ')
    )
    (pagexml.parent / "mets.xml").write_text('<mets xmlns="http://www.loc.gov/METS/"/>')

    expected = evaluate_folder(pred_dir, dataset)
    assert [row["id"] for row in expected["pages"]] == [page_id]
    assert 0 < expected["summary"]["fr"]["before"]["lines"]["cer"] < 0.2
    for folder in (alto, pagexml.parent):
        report = evaluate_folder(pred_dir, folder)
        assert report["pages"] == expected["pages"], folder
        assert report["summary"] == expected["summary"]
    assert [(Path(s["file"]).name, s["reason"][:14]) for s in report["skipped_truth"]] == []
    skipped = evaluate_folder(pred_dir, alto)["skipped_truth"]
    assert [(Path(s["file"]).name, s["reason"][:14]) for s in skipped] == [
        ("broken.xml", "XML unreadable")
    ]
    result = CliRunner().invoke(app, ["eval", str(pred_dir), "--gt", str(alto)])
    assert result.exit_code == 0, result.output
    assert "ground truth skipped" in result.output and "broken.xml" in result.output


def test_pages_of_the_same_name_in_several_documents_are_told_apart_by_folder(dataset, tmp_path):
    """A Transkribus export of two documents names both first pages 0001.xml (in doc/page/);
    `manuscribe run export/` names the outputs doc1/0001.json and doc2/0001.json."""
    from tests.gt_fixtures import write_page_xml

    first, second = (json.loads((dataset / f"{n}.json").read_text()) for n in
                     ("poilus_AD78_0005-1", "mss19_veuillot_f14"))  # fmt: skip
    info = StageInfo(name="e", version="1", fingerprint="f")
    export, pred_dir = tmp_path / "export", tmp_path / "pred"
    for doc, gt in (("doc1", first), ("doc2", second)):
        (export / doc / "page").mkdir(parents=True)
        write_page_xml(gt, "0001.jpg", export / doc / "page" / "0001.xml")
        lines = [(tuple(line["bbox"]), line["text"]) for line in gt["lines"]]
        document = Document(id="0" * 64, name=f"{doc}/0001", source=f"{doc}/0001.jpg",
                            media_type="image/jpeg", pages=[_page(lines, width=gt["width"])],
                            engine=info)  # fmt: skip
        (pred_dir / doc).mkdir(parents=True)
        (pred_dir / doc / "0001.json").write_text(document.model_dump_json())
    report = evaluate_folder(pred_dir, export)
    assert len(report["pages"]) == 2
    assert all(row["before"]["lines"]["cer"] == 0.0 for row in report["pages"])


def test_an_xml_named_otherwise_is_found_by_the_image_it_names(dataset, tmp_path):
    from tests.gt_fixtures import write_alto

    gt = json.loads((dataset / "mss19_veuillot_f14.json").read_text())
    (tmp_path / "gt").mkdir()
    write_alto(gt, "images\\scan-7.jpg", tmp_path / "gt" / "export_page_7.xml")  # a Windows path
    lines = [(tuple(line["bbox"]), line["text"]) for line in gt["lines"]]
    info = StageInfo(name="e", version="1", fingerprint="f")
    document = Document(id="0" * 64, name="scan-7", source="scan-7.jpg", media_type="image/jpeg",
                        pages=[_page(lines, width=gt["width"])], engine=info)  # fmt: skip
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "scan-7.json").write_text(document.model_dump_json())
    report = evaluate_folder(tmp_path / "pred", tmp_path / "gt")
    assert [row["id"] for row in report["pages"]] == ["scan-7"]
    assert report["pages"][0]["before"]["lines"]["cer"] == 0.0
