"""`manuscribe train`: fine-tune a recogniser on a collection's own transcriptions.

Ground truth is what eScriptorium and Transkribus export: ALTO or PAGE XML with the page images
beside it. Lines are cropped once into `<out>.ckpt/lines/` (a resumed run reuses them), pages are
split into training and validation, and the trainer keeps the best model at `out`. The model
written carries a character language model: the base model's, with the n-grams of the
collection's training transcriptions added (engines/char_lm.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from manuscribe.training.groundtruth import find_xml_files, read_page, unpack_archives
from manuscribe.training.lines import LineStore


@dataclass
class TrainReport:
    pages: int = 0
    lines: int = 0
    skipped_files: list[tuple[Path, str]] = field(default_factory=list)
    skipped_lines: int = 0
    added_chars: list[str] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    out: Path | None = None


def split_pages(pages: list[str], val_fraction: float, seed: int) -> set[str]:
    """Validation pages: a seeded, stable choice of whole pages (one at least, from two up)."""
    if len(pages) < 2 or val_fraction <= 0:
        return set()
    ranked = sorted(pages, key=lambda p: hashlib.sha1(f"{seed}:{p}".encode()).hexdigest())
    count = min(len(pages) - 1, max(1, round(val_fraction * len(pages))))
    return set(ranked[:count])


def collect_lines(
    gt_paths: list[Path], store: LineStore, report: TrainReport, log: Callable[[str], None]
) -> None:
    """Crop every usable line into the store (pages already there are skipped); bad files are
    reported one line each and left out."""
    done = store.pages_done()
    gt_paths = unpack_archives(gt_paths, store.root.parent / "gt")
    for xml in find_xml_files(gt_paths):
        page_id = str(xml.resolve())
        if page_id in done:
            continue
        page = read_page(xml)
        if page.error:
            report.skipped_files.append((xml, page.error))
            log(f"skipped {xml}: {page.error}")
            continue
        if page.problems:
            report.skipped_lines += len(page.problems)
            log(f"{xml}: {len(page.problems)} lines left out ({page.problems[0]})")
        store.add_page(page, collection=xml.parent.name, page_id=page_id)


def train_collection(
    gt_paths: list[Path],
    out: Path,
    base: str | None = None,
    max_minutes: float | None = None,
    epochs: float | None = None,
    val_fraction: float = 0.1,
    device: str = "auto",
    resume: bool = False,
    batch_size: int = 16,
    lr: float = 3e-4,
    eval_every: int | None = None,
    seed: int = 1,
    log: Callable[[str], None] = print,
    on_step: Callable | None = None,
) -> TrainReport:
    """Fine-tune `base` (default: the shipped handwriting model) on the given ground truth."""
    import torch

    from manuscribe.engines import rec_models
    from manuscribe.engines.char_lm import METADATA_KEY
    from manuscribe.training.charset import extend_charset
    from manuscribe.training.recognizer import load_recognizer, onnx_charset
    from manuscribe.training.trainer import TrainConfig, Trainer

    torch.manual_seed(seed)
    report = TrainReport(out=out)
    store = LineStore(out.with_name(out.name + ".ckpt") / "lines")
    collect_lines(gt_paths, store, report, log)
    samples = store.samples()
    if not samples:
        raise ValueError("no usable ground-truth lines in " + ", ".join(map(str, gt_paths)))
    pages = sorted({s.page for s in samples})
    val_pages = split_pages(pages, val_fraction, seed)
    train = [s for s in samples if s.page not in val_pages]
    val = [s for s in samples if s.page in val_pages]
    report.pages, report.lines = len(pages), len(samples)
    log(f"{len(pages)} pages, {len(train)} training lines, {len(val)} validation lines "
        f"({len(val_pages)} pages)")  # fmt: skip

    model = rec_models.resolve(base or "default")
    import onnx

    base_path = model.path or _rapidocr_rec_path()
    base_chars = onnx_charset(onnx.load(str(base_path)))
    charset, added = extend_charset(base_chars, (s.text for s in train))
    report.added_chars = added
    if added:
        log(f"characters the base model lacks, added to its output layer: {''.join(added)}")
    recognizer, _ = load_recognizer(base_path, charset)
    language_model = collection_language_model(model, (s.text for s in train))
    config = TrainConfig(
        out=out,
        max_minutes=max_minutes,
        epochs=epochs if epochs is not None or max_minutes is not None else 10.0,
        batch_size=batch_size,
        lr=lr,
        eval_every=eval_every or max(batch_size, min(2000, len(train))),
        device=device,
        seed=seed,
        metadata={
            "manuscribe_model": out.stem,
            "manuscribe_base": f"{model.name} sha256:{model.sha256[:16]}",
            "manuscribe_training": f"manuscribe train on {len(pages)} pages",
            METADATA_KEY: language_model.to_metadata(),
        },
    )
    trainer = Trainer(recognizer, store, train, val, config, log=log, on_step=on_step)
    if resume and not trainer.resume():
        log("nothing to resume: starting from the base model")
    trainer.train()
    report.history = trainer.state.history
    return report


def collection_language_model(base, texts):
    """The base model's language model plus every n-gram of the collection's own lines (a
    collection's names and formulae are worth keeping even when seen once); a base without one
    (rapidocr's) gives the collection's alone."""
    from manuscribe.engines import rec_models
    from manuscribe.engines.char_lm import CharNgramLM

    own = CharNgramLM.build(texts, min_count=1)
    shipped = rec_models.language_model(base)
    return shipped.merged(own) if shipped is not None else own


def _rapidocr_rec_path() -> Path:
    from manuscribe.training.recognizer import base_model_path

    return base_model_path()
