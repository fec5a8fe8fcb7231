"""Reading eScriptorium / Transkribus ground truth: ALTO v2-v4 and PAGE XML, bad files reported."""

from __future__ import annotations

import json
import shutil

import numpy as np

from manuscribe.textnorm import loose, normalise
from manuscribe.training.groundtruth import clean_text, find_xml_files, read_page
from manuscribe.training.lines import LINE_HEIGHT, LineStore, crop_lines
from tests.gt_fixtures import export_pages, write_alto, write_page_xml

PAGE = "poilus_AD78_0005-1"


def _gt(dataset):
    return json.loads((dataset / f"{PAGE}.json").read_text())


def test_alto_versions_and_page_xml_give_the_same_lines(dataset, tmp_path):
    gt = _gt(dataset)
    shutil.copy(dataset / f"{PAGE}.jpg", tmp_path / f"{PAGE}.jpg")
    readings = []
    for name, write in [
        ("v4.xml", lambda p: write_alto(gt, f"{PAGE}.jpg", p, version=4)),
        ("v2.xml", lambda p: write_alto(gt, f"{PAGE}.jpg", p, version=2)),
        ("page.xml", lambda p: write_page_xml(gt, f"{PAGE}.jpg", p)),
    ]:
        write(tmp_path / name)
        page = read_page(tmp_path / name)
        assert page.error is None, (name, page.error)
        readings.append([(line.text, line.bbox) for line in page.lines])
    expected = [(normalise(line["text"]), tuple(line["bbox"])) for line in gt["lines"]]
    assert readings[0] == readings[1] == readings[2] == expected
    assert len(expected) >= 10


def test_coordinates_follow_the_image_when_the_xml_is_for_a_larger_scan(dataset, tmp_path):
    gt = _gt(dataset)
    shutil.copy(dataset / f"{PAGE}.jpg", tmp_path / f"{PAGE}.jpg")
    write_alto(gt, f"{PAGE}.jpg", tmp_path / "big.xml", scale=2.0)
    page = read_page(tmp_path / "big.xml")
    for line, expected in zip(page.lines, gt["lines"], strict=True):
        assert all(abs(a - b) <= 1 for a, b in zip(line.bbox, expected["bbox"], strict=True))


def test_image_one_folder_up_is_found(dataset, tmp_path):
    """TIMEUS keeps its ALTO in alto/ and the images one level up."""
    gt = _gt(dataset)
    shutil.copy(dataset / f"{PAGE}.jpg", tmp_path / f"{PAGE}.jpg")
    (tmp_path / "alto").mkdir()
    write_alto(gt, f"{PAGE}.jpg", tmp_path / "alto" / f"{PAGE}.xml")
    page = read_page(tmp_path / "alto" / f"{PAGE}.xml")
    assert page.error is None and page.image_path == tmp_path / f"{PAGE}.jpg"


def test_bad_ground_truth_is_reported_per_file_and_per_line(dataset, tmp_path):
    gt = _gt(dataset)
    (tmp_path / "broken.xml").write_text("<alto><Layout><Page")
    write_alto(gt, "nowhere.jpg", tmp_path / "no-image.xml")
    (tmp_path / "html.xml").write_text("<html><body/></html>")
    shutil.copy(dataset / f"{PAGE}.jpg", tmp_path / f"{PAGE}.jpg")
    damaged = dict(gt, lines=[dict(line) for line in gt["lines"]])
    damaged["lines"][0]["text"] = "   "
    damaged["lines"][1]["bbox"] = [gt["width"] + 50, 10, gt["width"] + 400, 60]
    write_alto(damaged, f"{PAGE}.jpg", tmp_path / "damaged.xml")

    assert "XML unreadable" in read_page(tmp_path / "broken.xml").error
    assert "image missing" in read_page(tmp_path / "no-image.xml").error
    assert "nowhere.jpg" in read_page(tmp_path / "no-image.xml").error
    assert "neither ALTO nor PAGE" in read_page(tmp_path / "html.xml").error
    page = read_page(tmp_path / "damaged.xml")
    assert page.error is None
    assert len(page.lines) == len(gt["lines"]) - 2
    assert page.problems == [
        "line 1: empty transcription",
        f"line 2: polygon outside the page ({gt['width']}x{gt['height']})",
    ]
    assert len(find_xml_files([tmp_path])) == 4


def test_training_text_uses_the_scoring_normalisation():
    decomposed = "e\u0301te\u0301 M^r >rayé< ⟦biffé⟧ ¥"
    assert clean_text(decomposed) == "été Mr rayé biffé"
    assert clean_text(decomposed) == normalise(decomposed.replace("¥", ""))
    assert loose("Bonjour, Mr. DUPONT !") == "bonjour mr dupont"


def test_line_crops_are_stored_and_read_back(dataset, tmp_path):
    folder = export_pages(dataset, [PAGE], tmp_path / "gt")
    page = read_page(folder / f"{PAGE}.xml")
    crops = list(crop_lines(page))
    assert len(crops) == len(page.lines)
    assert all(img.shape[0] == LINE_HEIGHT and img.dtype == np.uint8 for img, _, _ in crops)
    store = LineStore(tmp_path / "store")
    samples = store.add_page(page, "poilus", "page-1", "fr")
    again = LineStore(tmp_path / "store").samples()
    assert [s.text for s in again] == [line.text for line in page.lines]
    assert again == samples and store.pages_done() == {"page-1"}
    assert np.array_equal(store.load(again[3]), crops[3][0])


def test_a_transkribus_export_reads_as_exported(dataset, tmp_path):
    """Transkribus: METS and metadata beside the pages, PAGE XML in page/ naming the TIFF it was
    made from while the export holds a JPEG (upper-case suffix) one folder up; some lines carry
    alternative readings, some only their words' text."""
    gt = _gt(dataset)
    doc = tmp_path / "doc"
    (doc / "page").mkdir(parents=True)
    shutil.copy(dataset / f"{PAGE}.jpg", doc / f"{PAGE}.JPG")
    xml = doc / "page" / f"{PAGE}.xml"
    write_page_xml(gt, f"{PAGE}.tif", xml)
    first, second = (normalise(line["text"]) for line in gt["lines"][:2])
    source = xml.read_text()
    source = source.replace(  # line 1: the lower index is the primary reading
        f"<TextEquiv><Unicode>{first}</Unicode></TextEquiv>",
        f'<TextEquiv index="2"><Unicode>wrong</Unicode></TextEquiv>'
        f'<TextEquiv index="1"><Unicode>{first}</Unicode></TextEquiv>',
        1,
    )
    words = "".join(
        f'<Word id="w{i}"><TextEquiv><Unicode>{w}</Unicode></TextEquiv></Word>'
        for i, w in enumerate(second.split())
    )
    source = source.replace(  # line 2: only its words are transcribed
        f"<TextEquiv><Unicode>{second}</Unicode></TextEquiv>", words, 1
    )
    xml.write_text(source)
    (doc / "mets.xml").write_text('<mets:mets xmlns:mets="http://www.loc.gov/METS/"/>')
    (doc / "metadata.xml").write_text("<trpDocMetadata><title>doc</title></trpDocMetadata>")

    assert find_xml_files([tmp_path]) == [xml]
    page = read_page(xml)
    assert page.error is None and page.image_path == doc / f"{PAGE}.JPG"
    assert [line.text for line in page.lines] == [normalise(line["text"]) for line in gt["lines"]]
    # named on its own, a METS file is still reported
    assert "neither ALTO nor PAGE" in read_page(doc / "mets.xml").error


def test_an_image_at_the_relative_path_the_xml_gives_is_found(dataset, tmp_path):
    gt = _gt(dataset)
    (tmp_path / "images").mkdir()
    (tmp_path / "alto").mkdir()
    shutil.copy(dataset / f"{PAGE}.jpg", tmp_path / "images" / "scan-1.jpg")
    write_alto(gt, "../images/scan-1.jpg", tmp_path / "alto" / f"{PAGE}.xml")
    page = read_page(tmp_path / "alto" / f"{PAGE}.xml")
    assert page.error is None and page.image_path.resolve() == tmp_path / "images" / "scan-1.jpg"


def test_alto_in_tenths_of_a_millimetre_maps_through_the_page_size(dataset, tmp_path):
    """Older ALTO producers write mm10 or inch1200: the page's WIDTH/HEIGHT, in the same unit,
    map the coordinates onto the image; without them the file is reported."""
    gt = _gt(dataset)
    shutil.copy(dataset / f"{PAGE}.jpg", tmp_path / f"{PAGE}.jpg")
    write_alto(gt, f"{PAGE}.jpg", tmp_path / "mm10.xml", scale=1.27)
    source = (tmp_path / "mm10.xml").read_text().replace(">pixel<", ">mm10<")
    (tmp_path / "mm10.xml").write_text(source)
    page = read_page(tmp_path / "mm10.xml")
    assert page.error is None and len(page.lines) == len(gt["lines"])
    for line, expected in zip(page.lines, gt["lines"], strict=True):
        assert all(abs(a - b) <= 1 for a, b in zip(line.bbox, expected["bbox"], strict=True))
    width = f'WIDTH="{round(gt["width"] * 1.27)}"'
    (tmp_path / "nosize.xml").write_text(source.replace(width, ""))
    assert "without the page's WIDTH" in read_page(tmp_path / "nosize.xml").error


def test_an_export_zip_is_ground_truth_for_training_and_eval(dataset, tmp_path):
    """eScriptorium hands its exports out as ZIPs: `manuscribe train` and `manuscribe eval` take
    one as it is; unpacked once, so a resumed run finds the pages it has already cropped."""
    import zipfile

    from typer.testing import CliRunner

    from manuscribe.cli import app
    from manuscribe.model import Block, Document, Line, Page, StageInfo
    from manuscribe.training.run import TrainReport, collect_lines

    folder = export_pages(dataset, [PAGE], tmp_path / "export")
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(folder.iterdir()):
            bundle.write(path, f"export/{path.name}")
    store = LineStore(tmp_path / "run.ckpt" / "lines")
    collect_lines([archive], store, TrainReport(), log=print)
    expected = [normalise(line["text"]) for line in _gt(dataset)["lines"]]
    assert [sample.text for sample in store.samples()] == expected
    unpacked = list((tmp_path / "run.ckpt" / "gt").iterdir())
    collect_lines([archive], store, TrainReport(), log=print)  # resumed: nothing added twice
    assert len(store.samples()) == len(expected)
    assert list((tmp_path / "run.ckpt" / "gt").iterdir()) == unpacked

    gt = _gt(dataset)
    lines = [
        Line(bbox=tuple(line["bbox"]), text=line["text"], confidence=0.9) for line in gt["lines"]
    ]
    block = Block(id="p1-b1", bbox=(0, 0, gt["width"], gt["height"]), confidence=0.9, lines=lines,
                  text="\n".join(line.text for line in lines))  # fmt: skip
    page = Page(number=1, width=gt["width"], height=gt["height"], dpi=200, blocks=[block])
    engine = StageInfo(name="e", version="1", fingerprint="f")
    document = Document(id="0" * 64, name=PAGE, source=f"{PAGE}.jpg", media_type="image/jpeg",
                        pages=[page], engine=engine)  # fmt: skip
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / f"{PAGE}.json").write_text(document.model_dump_json())
    result = CliRunner().invoke(
        app, ["eval", str(tmp_path / "pred"), "--gt", str(archive), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["summary"]["all"]["before"]["lines"]["cer"] == 0.0
