"""The tiny kraken model helper end to end: a few training steps with kraken's own training API
on lines of two real dev pages, the model file written as `ketos train` writes it, loaded back
through kraken's public loading path, and run over a real line. Only the mechanics are checked:
a few epochs do not make a model that reads, and no model trained here is kept."""

from __future__ import annotations

import json
import math

import pytest
from PIL import Image

from tests.kraken_fixtures import FORMATS, TrainingLog, train_tiny_kraken_model
from tests.requires import require_module

require_module("kraken", "make install-test")

from kraken.configs import RecognitionInferenceConfig  # noqa: E402
from kraken.containers import BaselineLine, Segmentation  # noqa: E402
from kraken.lib.ctc_decoder import greedy_decoder  # noqa: E402
from kraken.tasks import RecognitionTaskModel  # noqa: E402

PAGES = ["poilus_AD78_0014-0", "poilus_AD78_0018-0"]  # 16 + 15 lines


def _page(dataset, page_id):
    page = json.loads((dataset / f"{page_id}.json").read_text())
    image = Image.open(dataset / f"{page_id}.jpg")
    image.load()
    assert image.size == (page["width"], page["height"]), "boxes are in the jpg's pixels"
    return page, image


def _segmentation(bbox) -> Segmentation:
    """One baseline line from a box: the baseline along its bottom, the box as its boundary."""
    x0, y0, x1, y1 = bbox
    line = BaselineLine(
        id="line",
        baseline=[(x0, y1 - 1), (x1, y1 - 1)],
        boundary=[(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)],
    )
    return Segmentation(
        type="baselines",
        imagename="page.jpg",
        text_direction="horizontal-lr",
        script_detection=False,
        lines=[line],
    )


def _no_blank_decoder(outputs, seq_lens=None):
    """kraken's greedy decoder with the CTC blank (label 0) taken out, so that a model too new
    to emit anything but blanks still yields characters, each with its softmax confidence."""
    outputs = outputs.clone()
    outputs[..., 0, :] = 0
    return greedy_decoder(outputs, seq_lens)


def _check_record(record) -> None:
    assert isinstance(record.prediction, str)
    assert len(record.confidences) == len(record.prediction), record
    assert all(0.0 <= c <= 1.0 for c in record.confidences), record.confidences


@pytest.mark.timeout(120)  # about 10 s a format here; a hang must not hold the suite for long
@pytest.mark.parametrize("fmt", ["safetensors", "coreml"])
def test_tiny_kraken_model_trains_saves_loads_and_predicts(dataset, tmp_path, fmt):
    lines = []
    for page_id in PAGES:
        page, image = _page(dataset, page_id)
        lines += [(image.crop(line["bbox"]), line["text"]) for line in page["lines"]]
    lines.pop()  # the last line of the last page is only read, never trained on
    line = page["lines"][-1]
    assert len(lines) == 30

    log = TrainingLog()
    path = train_tiny_kraken_model(lines, tmp_path / "kraken", epochs=3, fmt=fmt, log=log)

    # training ran all its steps, with a finite loss that fell
    assert len(log.losses) == 3 * 27  # 30 lines, every 10th held out for validation
    assert all(math.isfinite(x) and x > 0 for x in log.losses)  # 0: a line too long for CTC
    assert len(log.epoch_losses) == 3 and log.epoch_losses[-1] < log.epoch_losses[0]
    assert len(log.val_metric) == 3
    assert all(math.isfinite(v) and v <= 1.0 for v in log.val_metric)

    # the file is kraken's and loads through its public loading path
    assert path == tmp_path / "kraken" / f"model{FORMATS[fmt]}" and path.stat().st_size > 0
    model = RecognitionTaskModel.load_model(path)
    assert model.net.model_type == ["recognition"] and model.seg_type == "baselines"
    codec = set(model.net.codec.c2l)  # built from the training lines' text
    assert codec == {c for n, (_, text) in enumerate(lines) if n % 10 != 9 for c in text}

    # it reads a real line given as a baseline segmentation
    segmentation = _segmentation(line["bbox"])
    (record,) = model.predict(image, segmentation, RecognitionInferenceConfig())
    _check_record(record)
    (record,) = model.predict(
        image, segmentation, RecognitionInferenceConfig(decoder=_no_blank_decoder)
    )
    _check_record(record)
    assert record.prediction and set(record.prediction) <= set(codec)
