"""Which recogniser the rapidocr engine reads with: the shipped model, rapidocr's, a file, or a
storage key; its hash keys the OCR fingerprint."""

from __future__ import annotations

import shutil

import pytest

from manuscribe.engines import EngineError, rec_models
from manuscribe.engines.rapidocr_engine import RapidOcrEngine
from manuscribe.settings import load_settings
from manuscribe.stages import engine_info
from manuscribe.storage.local import LocalStorage
from producer.submit import SubmitError, _share_ocr_model


def test_default_is_the_shipped_handwriting_model():
    model = rec_models.resolve("default")
    assert model.path == rec_models.MODELS_DIR / "manuscribe-htr-latin-v6.onnx"
    assert model.name == "manuscribe-htr-latin-v6" and len(model.sha256) == 64
    assert (rec_models.MODELS_DIR / "NOTICE.md").is_file()
    assert (rec_models.MODELS_DIR / "LICENSE-Apache-2.0.txt").is_file()
    assert rec_models.resolve("ppocr").path is None  # rapidocr's own


def test_a_missing_or_foreign_file_is_a_clear_engine_error(tmp_path):
    with pytest.raises(EngineError, match="no such file"):
        rec_models.resolve(str(tmp_path / "absent.onnx"))
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(EngineError, match="not a loadable ONNX model"):
        rec_models.resolve(str(tmp_path / "junk.onnx"))


def test_the_model_hash_is_in_the_ocr_fingerprint(tmp_path):
    settings = load_settings()
    shipped = RapidOcrEngine(rec_model=rec_models.resolve("default"))
    previous = RapidOcrEngine(rec_model=rec_models.resolve("ppocr"))
    copy = tmp_path / "copy.onnx"
    shutil.copy(rec_models.resolve("default").path, copy)
    same_bytes = RapidOcrEngine(rec_model=rec_models.resolve(str(copy)))
    fingerprints = {engine_info(e, settings).fingerprint for e in (shipped, previous)}
    assert len(fingerprints) == 2
    # a copy of the same file is the same model: its OCR is reused
    same = engine_info(same_bytes, settings).fingerprint
    assert same == engine_info(shipped, settings).fingerprint


def test_submit_shares_a_local_model_through_storage_and_workers_fetch_it(tmp_path):
    storage = LocalStorage(tmp_path / "store")
    model = tmp_path / "mine.onnx"
    shutil.copy(rec_models.resolve("default").path, model)
    spec = _share_ocr_model(str(model), storage)
    key = spec.removeprefix(rec_models.STORAGE_PREFIX)
    assert spec.startswith(rec_models.STORAGE_PREFIX) and storage.exists(key)
    assert _share_ocr_model(str(model), storage) == spec  # uploaded once, by content
    assert _share_ocr_model("default", storage) == "default"
    fetched = rec_models.resolve(spec, storage, tmp_path / "worker-cache")
    assert fetched.path.parent == tmp_path / "worker-cache"
    assert fetched.sha256 == rec_models.resolve(str(model)).sha256
    with pytest.raises(EngineError, match="not in the storage"):
        rec_models.resolve("storage:models/nothing.onnx", storage, tmp_path / "c")
    with pytest.raises(SubmitError, match="no such file"):
        _share_ocr_model(str(tmp_path / "absent.onnx"), storage)


def test_second_opinion_wins_only_where_it_is_more_confident_by_the_margin(dataset):
    from PIL import Image

    from manuscribe.engines import Hints

    with Image.open(dataset / "stanford_lettre75.jpg") as image:
        page = image.convert("RGB")
    model = rec_models.resolve("default")
    alone = RapidOcrEngine(rec_model=model, text_score=0.0)
    even, default, never = (
        RapidOcrEngine(
            rec_model=model, text_score=0.0, second_opinion=True, second_opinion_margin=margin
        )  # fmt: skip
        for margin in (0.0, load_settings().ocr_second_opinion_margin, 1.0)
    )
    hints = Hints(dpi=200, language="en")
    first = alone.recognize(page, hints).lines
    readings = [engine.recognize(page, hints).lines for engine in (even, default, never)]
    for chosen in readings:
        assert [line.bbox for line in first] == [line.bbox for line in chosen]  # same detector
        assert all(b.confidence >= a.confidence for a, b in zip(first, chosen, strict=True))
    changed = [sum(a.text != b.text for a, b in zip(first, r, strict=True)) for r in readings]
    # an even comparison takes the printed reading most often, a margin of 1 never does
    assert changed[0] > changed[1] >= changed[2] == 0
    assert readings[2] == first
    settings = load_settings()
    prints = {engine_info(e, settings).fingerprint for e in (alone, even, default)}
    assert len(prints) == 3


def test_a_printed_reading_in_characters_the_handwriting_model_lacks_is_not_taken(dataset):
    """The printed-text model is a Chinese one: on a punch hole or a speck it reads an
    ideograph, confidently. Its full-width punctuation maps to ASCII; anything else outside the
    handwriting model's characters never wins."""
    import unicodedata

    from PIL import Image

    from manuscribe.engines import Hints

    engine = RapidOcrEngine(rec_model=rec_models.resolve("default"), second_opinion=True)
    assert engine._printed("M\uff0eDupont\uff0c 12\u3002", 0.9) == ("M.Dupont, 12.", 0.9)
    assert engine._printed("\u4e00", 0.99) == ("\u4e00", -1.0)
    with Image.open(dataset / "stanford_i083.jpg") as image:  # its punch hole read "一" before
        lines = engine.recognize(image.convert("RGB"), Hints(dpi=200)).lines
    assert len(lines) >= 10
    text = "".join(line.text for line in lines)
    assert not [c for c in text if unicodedata.name(c, "").startswith("CJK")], text


def test_an_english_page_is_decoded_with_the_english_language_model(dataset):
    """The main LM is 99% French text; the shipped model also carries an LM of the corpus's
    English lines, used for pages given as English or told English from their text."""
    from PIL import Image

    from manuscribe.engines import Hints

    model = rec_models.resolve("default")
    english = rec_models.language_models(model)["en"]
    french = rec_models.language_model(model)
    # each prefers its own language's phrase
    assert english.score("and the") - english.score("et le") > 5
    assert french.score("et le") - french.score("and the") > 5
    engine = RapidOcrEngine(rec_model=model, text_score=0.0)
    assert engine.settings()["language_models"] == ["en"]
    for name, language in (("stanford_i084.jpg", "en"), ("poilus_AD78_0005-1.jpg", "fr")):
        with Image.open(dataset / name) as image:
            page = image.convert("RGB")
        told = {lang: engine.recognize(page, Hints(dpi=200, language=lang)).lines
                for lang in ("en", "fr")}  # fmt: skip
        assert [x.text for x in told["en"]] != [x.text for x in told["fr"]]
        # without a hint the page's language is told from its text, with the same result: an
        # English page's lines are decoded again from the frames the first pass recorded, so
        # the network does not read them twice
        reads: list[int] = []
        network = engine._ocr.recognize_txt

        def counted(crops, reads=reads, network=network):
            reads.append(len(crops))
            return network(crops)

        engine._ocr.recognize_txt = counted
        try:
            assert engine.recognize(page, Hints(dpi=200)).lines == told[language]
        finally:
            engine._ocr.recognize_txt = network
        assert len(reads) == 1  # the page's one pass (rapidocr's own call)
    plain = RapidOcrEngine(rec_model=model, language_model=False)
    assert plain.language_models == {} and plain.settings()["language_models"] == []


def test_reading_with_the_shipped_model_needs_no_torch():
    """CPU OCR workers run the recogniser in onnxruntime: the CLI, the pipeline, the worker
    tasks and the rapidocr and tesseract engines import neither torch, kraken nor the training
    code."""
    import subprocess
    import sys

    code = (
        "import sys, manuscribe.cli, manuscribe.pipeline, workers.tasks\n"
        "from manuscribe.engines import create_engine\n"
        "from manuscribe.settings import load_settings\n"
        "create_engine('rapidocr', load_settings())\n"
        "create_engine('tesseract', load_settings())\n"
        "print(sorted(m for m in ('torch', 'torchvision', 'kraken', 'onnx', 'onnx2torch',"
        " 'manuscribe.training', 'manuscribe.engines.kraken_engine') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_shipped_model_reads_with_its_language_model_unless_told_not_to(dataset):
    from PIL import Image

    from manuscribe.engines import Hints

    model = rec_models.resolve("default")
    lm = rec_models.language_model(model)
    assert lm is not None and lm.order >= 4 and len(lm.counts) > 10_000
    assert lm.score("Testament de") > lm.score("Tzstqment dx")
    with_lm = RapidOcrEngine(rec_model=model, text_score=0.0)
    greedy = RapidOcrEngine(rec_model=model, text_score=0.0, language_model=False)
    assert with_lm.settings()["decoder"] == "beam+charlm"
    assert greedy.settings()["decoder"] == "greedy"
    assert RapidOcrEngine(rec_model=rec_models.resolve("ppocr")).language_model is None
    settings = load_settings()
    assert engine_info(with_lm, settings).fingerprint != engine_info(greedy, settings).fingerprint

    with Image.open(dataset / "poilus_AD78_0005-1.jpg") as image:
        page = image.convert("RGB")
    beam = with_lm.recognize(page, Hints(dpi=200)).lines
    plain = greedy.recognize(page, Hints(dpi=200)).lines
    # the same lines, kept or dropped by the same (greedy) confidence; only the text changes
    assert [(x.bbox, x.confidence) for x in beam] == [(x.bbox, x.confidence) for x in plain]
    assert sum(x.text != y.text for x, y in zip(beam, plain, strict=True)) >= 2
    crops = [page.crop(line.bbox) for line in plain[:4]]
    assert [t for t, _ in with_lm.read_crops(crops)] != [t for t, _ in greedy.read_crops(crops)]


def test_a_model_whose_language_model_is_damaged_is_refused_by_name(tmp_path):
    from tests.requires import require_module

    onnx = require_module("onnx", "pip install -e '.[train]'")
    model = onnx.load(str(rec_models.resolve("default").path))
    for entry in model.metadata_props:
        if entry.key == "manuscribe_charlm":
            entry.value = "not base64 zlib json"
    damaged = tmp_path / "damaged.onnx"
    onnx.save(model, str(damaged))
    with pytest.raises(EngineError, match="damaged.onnx: its language model cannot be read"):
        RapidOcrEngine(rec_model=rec_models.resolve(str(damaged)))
    # read greedily, the same file still works
    assert RapidOcrEngine(rec_model=rec_models.resolve(str(damaged)), language_model=False)
