"""Fine-tuning the recogniser: conversion, export, a few real training steps, resume, CLI.

Training runs a handful of steps on lines of real dev pages to check the mechanics (the loss
falls, a checkpoint resumes, the model written loads through the engine's own loading code and
reads); no model trained here is kept or shipped.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.gt_fixtures import export_pages
from tests.requires import missing, require_module

torch = require_module("torch", "make install-test (pip install -e '.[train]')")
require_module("onnx", "pip install -e '.[train]'")
try:  # through the project's import, which stands in for torchvision's detection ops
    from manuscribe.training.recognizer import import_onnx2torch

    import_onnx2torch()
except ImportError as exc:
    missing("onnx2torch is not importable", "pip install --no-deps onnx2torch==1.5.15", exc)

from manuscribe.engines import Hints, rec_models  # noqa: E402
from manuscribe.engines.rapidocr_engine import RapidOcrEngine  # noqa: E402
from manuscribe.settings import load_settings  # noqa: E402
from manuscribe.stages import engine_info  # noqa: E402
from manuscribe.training.lines import LineStore  # noqa: E402
from manuscribe.training.recognizer import (  # noqa: E402
    base_model_path,
    export_onnx,
    load_recognizer,
    onnx_charset,
)
from manuscribe.training.split import (  # noqa: E402
    OnnxBackbone,
    backbone_modules,
    split_node,
    stage_inputs,
    tail_module,
)
from manuscribe.training.trainer import (  # noqa: E402
    TrainConfig,
    Trainer,
    _legacy_optimizer_params,
    freeze_backbone,
    to_batch,
)

PAGES = ["poilus_AD78_0005-1", "mss19_louise-michel_img22", "stanford_lettre75"]


@pytest.fixture(scope="module")
def line_store(dataset, tmp_path_factory):
    from manuscribe.training.groundtruth import read_page

    root = tmp_path_factory.mktemp("lines")
    folder = export_pages(dataset, PAGES, root / "gt")
    store = LineStore(root / "store")
    for page_id in PAGES:
        store.add_page(read_page(folder / f"{page_id}.xml"), page_id.split("_")[0], page_id)
    return store


def _onnx_probabilities(path: Path, batch: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": batch})[0]


def test_converted_base_model_gives_the_onnx_model_outputs():
    import onnx

    full = ["<blank>", *onnx_charset(onnx.load(str(base_model_path()))), " "]
    charset = list("abcdefghijklmnopqrstuvwxyzéè0123456789,.") + ["ꝑ"]  # ꝑ is new
    recognizer, report = load_recognizer(None, charset, stretch=1.0)
    assert report["added"] == ["ꝑ"] and len(report["dropped"]) > 18000
    recognizer.eval()
    batch = np.random.default_rng(0).uniform(-1, 1, (2, 3, 48, 200)).astype(np.float32)
    expected = np.log(_onnx_probabilities(base_model_path(), batch))
    with torch.no_grad():
        logits = recognizer(torch.from_numpy(batch)).numpy()
    kept = [i for i, c in enumerate(recognizer.classes) if c in full]
    columns = [full.index(recognizer.classes[i]) for i in kept]
    # softmax over fewer classes shifts log-probabilities by a constant per frame
    a, b = expected[..., columns], logits[..., kept]
    a, b = a - a.mean(-1, keepdims=True), b - b.mean(-1, keepdims=True)
    assert np.abs(a - b).max() < 1e-3


def test_export_carries_stretch_softmax_and_charset(tmp_path, line_store):
    charset = sorted({c for s in line_store.samples() for c in s.text} - {" "})
    recognizer, _ = load_recognizer(None, charset, stretch=1.5)
    path = export_onnx(recognizer, tmp_path / "m.onnx", {"manuscribe_model": "test-model"})
    batch, _ = to_batch([line_store.load(s) for s in line_store.samples()[:3]], 1.5)
    probabilities = _onnx_probabilities(path, batch.numpy())
    assert probabilities.shape[1] == batch.shape[3] * 1.5 // 8  # stretched inside the model
    assert np.allclose(probabilities.sum(-1), 1.0, atol=1e-4)
    recognizer.eval()
    with torch.no_grad():
        expected = recognizer(batch).softmax(-1).numpy()
    assert np.abs(probabilities - expected).max() < 2e-3
    again, _ = load_recognizer(path)  # a model of ours is a valid base for more training
    assert again.stretch == 1.5 and again.charset == charset
    again.eval()
    with torch.no_grad():
        assert np.abs(again(batch).softmax(-1).numpy() - expected).max() < 2e-3
    model = rec_models.resolve(str(path))
    assert model.name == "test-model" and len(model.sha256) == 64
    # fine-tuning one of our models: its neck and head split off its backbone as for rapidocr's
    config = TrainConfig(out=tmp_path / "again.onnx", threads=2)
    trainer = Trainer(again, line_store, line_store.samples()[:2], [], config)
    trainer.model.eval()
    with torch.no_grad():
        assert np.abs(trainer.forward(batch).softmax(-1).numpy() - expected).max() < 2e-3


def _batch_loss(trainer: Trainer, samples) -> float:
    trainer.model.eval()
    with torch.no_grad():
        images = [trainer.store.load(s) for s in samples]
        batch, frames = to_batch(images, trainer.model.stretch)
        targets, lengths = trainer._targets([s.text for s in samples])
        logits = trainer.forward(batch)
        log_probs = logits.log_softmax(-1).transpose(0, 1)
        loss = trainer.ctc(log_probs, targets, frames.clamp(max=logits.shape[1]), lengths)
    trainer.model.train()
    return float(loss)


def test_training_lowers_the_loss_and_resumes_from_its_checkpoint(tmp_path, line_store):
    samples = line_store.samples()[:12]
    charset = sorted({c for s in line_store.samples() for c in s.text} - {" "})
    recognizer, _ = load_recognizer(None, charset, stretch=1.5)
    config = TrainConfig(out=tmp_path / "m.onnx", epochs=4, batch_size=4, lr=1e-3,
                         warmup_steps=1, eval_every=24, augment=False, threads=2)  # fmt: skip
    trainer = Trainer(recognizer, line_store, samples, samples[:4], config, log=lambda _: None)
    before = _batch_loss(trainer, samples)
    state = trainer.train()
    after = _batch_loss(trainer, samples)
    assert state.lines_seen >= 48 and after < 0.8 * before, (before, after)
    assert config.out.is_file() and (tmp_path / "m.onnx.ckpt" / "last.pt").is_file()
    assert [h["lines_seen"] for h in state.history][0] == 0  # the starting point is recorded

    fresh, _ = load_recognizer(None, charset, stretch=1.5)
    resumed = Trainer(fresh, line_store, samples, samples[:4], config, log=lambda _: None)
    assert resumed.resume()
    assert resumed.state.lines_seen == state.lines_seen and resumed.state.step == state.step
    for (name, a), b in zip(trainer.model.state_dict().items(), fresh.state_dict().values(),
                            strict=True):  # fmt: skip
        assert torch.equal(a, b), name
    assert abs(_batch_loss(resumed, samples) - after) < 1e-4


def test_manuscribe_train_writes_a_model_the_engine_reads_with(dataset, tmp_path):
    gt = export_pages(dataset, PAGES, tmp_path / "gt")
    (gt / "broken.xml").write_text("<alto><Layout>")
    out = tmp_path / "models" / "collection.onnx"
    command = [sys.executable, "-m", "manuscribe", "train", str(gt), "--out", str(out),
               "--epochs", "0.3", "--val-fraction", "0.34", "--batch-size", "8"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 1, result.stdout + result.stderr  # one GT file was bad
    assert f"skipped {gt / 'broken.xml'}: XML unreadable" in result.stdout
    assert "validation CER" in result.stdout and out.is_file()

    model = rec_models.resolve(str(out))
    # its language model is the shipped one plus the n-grams of the collection's own lines
    shipped = rec_models.language_model(rec_models.resolve("default"))
    own = rec_models.language_model(model)
    assert own is not None and own.order == shipped.order
    grown = [g for g, n in own.counts.items() if n > shipped.counts.get(g, 0)]
    assert len(grown) > 1000 and all(own.counts[g] >= n for g, n in shipped.counts.items())
    engine = RapidOcrEngine(threads=2, rec_model=model)
    assert engine.settings()["decoder"] == "beam+charlm"
    with Image.open(dataset / "poilus_AD78_0005-1.jpg") as image:
        page = engine.recognize(image.convert("RGB"), Hints(dpi=200))
    assert len(page.lines) >= 5 and sum(len(line.text) for line in page.lines) > 100
    default = RapidOcrEngine(threads=2, rec_model=rec_models.resolve("default"))
    settings = load_settings()
    assert engine_info(engine, settings).fingerprint != engine_info(default, settings).fingerprint

    resumed = subprocess.run([*command[:-6], "--epochs", "0.6", "--resume"],
                             capture_output=True, text=True, timeout=900)  # fmt: skip
    assert "resumed from" in resumed.stdout, resumed.stdout + resumed.stderr


@pytest.mark.parametrize("stages", [0, 1, 2])
def test_frozen_front_in_onnxruntime_and_trainable_tail_give_the_full_model(line_store, stages):
    charset = sorted({c for s in line_store.samples() for c in s.text} - {" "})
    recognizer, _ = load_recognizer(None, charset, stretch=1.5)
    assert len(stage_inputs(recognizer.body)) == 2  # PP-OCRv6 small: two stride-(2, 1) stages
    with pytest.raises(ValueError, match="2 stages"):
        split_node(recognizer.body, 3)
    freeze_backbone(recognizer, stages)
    front, tail = OnnxBackbone(recognizer, threads=2, trainable_stages=stages), None
    tail = tail_module(recognizer, stages)
    # exactly what the tail computes trains: nothing of the front (its bias constants neither)
    trainable = {id(p) for p in recognizer.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in tail.parameters()}
    batch, _ = to_batch([line_store.load(s) for s in line_store.samples()[:2]], 1.5)
    recognizer.eval()
    with torch.no_grad():
        full, split = recognizer(batch), tail(front(batch))
    assert split.shape == full.shape and (split - full).abs().max() < 1e-3


def test_resume_with_more_stages_trainable_keeps_what_optimizer_state_it_can(tmp_path, line_store):
    samples = line_store.samples()[:8]
    charset = sorted({c for s in line_store.samples() for c in s.text} - {" "})
    config = TrainConfig(out=tmp_path / "m.onnx", epochs=1, batch_size=4, warmup_steps=1,
                         eval_every=100, augment=False, threads=2)  # fmt: skip
    first = Trainer(load_recognizer(None, charset, 1.5)[0], line_store, samples, samples[:2],
                    config, log=lambda _: None)  # fmt: skip
    first.train()
    lines = []
    config.trainable_stages, config.epochs, config.lr_decay = 1, 2, "cosine"
    config.warmup_steps = 20
    again = Trainer(load_recognizer(None, charset, 1.5)[0], line_store, samples, samples[:2],
                    config, log=lines.append)  # fmt: skip
    assert again.resume()
    rebuilt = next(line for line in lines if line.startswith("optimizer rebuilt"))
    kept = len(first.param_names)  # the neck and head keep their moments; the stage starts fresh
    assert f"{kept} tensors keep their state" in rebuilt and "warm-up restarts" in rebuilt
    assert again.state.warmup_from == first.state.step and again._lr() < 0.1 * config.lr
    state = again.train()
    assert state.lines_seen == 16 and state.history[-1]["lr"] < config.lr
    # the checkpoint is one the build script exports, as any other
    script = Path(__file__).resolve().parent.parent / "scripts" / "build_handwriting_model.py"
    out = tmp_path / "exported.onnx"
    subprocess.run([sys.executable, str(script), "export", str(again.checkpoints / "last.pt"),
                    "--out", str(out)], check=True, capture_output=True, timeout=300)  # fmt: skip
    assert rec_models.resolve(str(out)).sha256


def test_checkpoints_from_before_named_optimizer_parameters_map_by_name():
    recognizer, _ = load_recognizer(None, list("abc"), stretch=1.5)
    for name in backbone_modules(recognizer):  # as freeze="backbone" froze before
        for param in recognizer.body.get_submodule(name).parameters():
            param.requires_grad_(False)
    old = [name for name, p in recognizer.named_parameters() if p.requires_grad]
    assert _legacy_optimizer_params(recognizer, len(old)) == old
    everything = [name for name, _ in recognizer.named_parameters()]
    assert _legacy_optimizer_params(recognizer, len(everything)) == everything
    assert _legacy_optimizer_params(recognizer, 7) is None


def test_cosine_decay_goes_from_lr_to_a_twentieth_over_the_budget(tmp_path, line_store):
    samples = line_store.samples()[:10]
    recognizer, _ = load_recognizer(None, list("abc"), stretch=1.5)
    config = TrainConfig(out=tmp_path / "m.onnx", epochs=1, lr=1e-3, warmup_steps=10,
                         lr_decay="cosine", freeze="none", threads=2)  # fmt: skip
    trainer = Trainer(recognizer, line_store, samples, [], config, log=lambda _: None)
    trainer.state.step = 1
    assert trainer._lr() == pytest.approx(2e-4, rel=1e-3)  # warming up
    trainer.state.step = 50
    rates = []
    for seen in (0, 5, 10):
        trainer.state.lines_seen = seen
        rates.append(trainer._lr())
    assert rates == pytest.approx([1e-3, 1e-3 * (1 + 1 / 20) / 2, 1e-3 / 20])
    with pytest.raises(ValueError, match="budget"):
        Trainer(recognizer, line_store, samples, [], TrainConfig(out=config.out,
                lr_decay="cosine"))  # fmt: skip
