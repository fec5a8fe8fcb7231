"""A tiny kraken recognition model trained in the test itself, through kraken 7's own training API.

`train_tiny_kraken_model(lines, out_dir)` wires kraken's pieces the way `ketos train`
(kraken/ketos/recognition.py) does: a `VGSLRecognitionTrainingDataConfig` and a
`VGSLRecognitionTrainingConfig`, a `VGSLRecognitionDataModule` over line images with `.gt.txt`
beside them (`format_type='path'`), a fresh `VGSLRecognitionModel` (its output layer `O1c<n>` is
appended by kraken from the codec built from the training text), `KrakenTrainer.fit`, then a
Lightning checkpoint converted to a weights file with `kraken.models.convert.convert_models`, the
call `ketos train` ends with. The file loads through `RecognitionTaskModel.load_model`.

The model is for checking mechanics (the loss falls, the file loads and predicts); a few epochs
over a few dozen lines do not make it read. No model trained with this is kept or shipped.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from PIL import Image

# input 1 x 32 px high x any width x 1 channel; two conv + max-pool blocks (width / 4 frames),
# the height folded into the features (S1(1x0)1,3), one small bidirectional LSTM. kraken appends
# the output layer O1c<n>, n = the codec's labels + the CTC blank, from the training text.
TINY_SPEC = "[1,32,0,1 Cr3,3,16 Mp2,2 Cr3,3,32 Mp2,2 S1(1x0)1,3 Lbx64]"
FORMATS = {"safetensors": ".safetensors", "coreml": ".mlmodel"}
# warnings of a CPU run without a logger, none about the training itself
QUIET = [
    ".*pin_memory.*",  # kraken's loaders ask for pinned memory, there is no accelerator
    ".*does not have many workers.*",  # num_workers=0 on purpose
    ".*but have no logger configured.*",  # kraken logs metrics with logger=True
    ".*LeafSpec.*",  # a deprecation inside Lightning itself
    ".*save_model` is deprecated.*",  # kraken's own CoreML writer still calls it
]


@dataclass
class TrainingLog:
    """What a run recorded: kraken's CTC loss (summed over a batch's lines) after every step,
    their mean over each epoch, and kraken's `val_metric` after every epoch: character accuracy
    on the validation lines, 1 - CER (at most 1; below 0 when the model inserts more characters
    than the lines have).

    kraken's CTCLoss has `zero_infinity=True`: a step whose line is too long for the frames the
    network gives it (width / 4 with TINY_SPEC) has a loss of 0, not inf. kraken also appends
    the val metrics to the model's metadata when it writes a checkpoint, but the weights file
    converted from that checkpoint (as `ketos train` converts it) does not keep them; hence this.
    """

    losses: list[float] = field(default_factory=list)
    epoch_losses: list[float] = field(default_factory=list)
    val_metric: list[float] = field(default_factory=list)


def _write_lines(lines: Sequence[tuple[Image.Image, str]], folder: Path) -> list[str]:
    """Line images as PNG with `<name>.gt.txt` beside them: kraken's `path` training format."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, (image, text) in enumerate(lines):
        text = " ".join(text.split())
        if not text:
            raise ValueError(f"line {index} has no text")
        path = folder / f"{index:04d}.png"
        image.convert("L").save(path)
        path.with_suffix(".gt.txt").write_text(text, encoding="utf-8")
        paths.append(str(path))
    return paths


def train_tiny_kraken_model(
    lines: Sequence[tuple[Image.Image, str]],
    out_dir: Path,
    *,
    epochs: int = 3,
    val_lines: Sequence[tuple[Image.Image, str]] | None = None,
    fmt: Literal["safetensors", "coreml"] = "safetensors",
    spec: str = TINY_SPEC,
    lrate: float = 1e-3,
    batch_size: int = 1,
    linetype: Literal["baselines", "bbox"] = "baselines",
    seed: int = 0,
    log: TrainingLog | None = None,
) -> Path:
    """Train a tiny VGSL recognition model on `lines` (line image, transcription) for `epochs`
    passes over them, one optimizer step per `batch_size` lines; CPU, one thread.

    Returns the path of the model file written in `out_dir`: `model.safetensors` (kraken 7's
    default, as `ketos train` writes it) or `model.mlmodel` (`fmt="coreml"`). `out_dir` also gets
    the line images (`lines/`) and the Lightning checkpoint the file was converted from.

    `val_lines` are the validation lines (default: every 10th line of `lines`, held out).
    `log`, when given, is filled in as training runs (see `TrainingLog`). `seed` goes to
    Lightning's `seed_everything` (Python, numpy and torch): a run repeats on one machine.

    `linetype="baselines"` (ketos `--linetype baselines`) trains on the line images as kraken
    prepares the lines of a baseline `Segmentation` (no centerline normalisation); `"bbox"` as
    it prepares the lines of a bbox `Segmentation`.
    """
    import lightning as L
    import torch
    from kraken.configs import VGSLRecognitionTrainingConfig, VGSLRecognitionTrainingDataConfig
    from kraken.models.convert import convert_models
    from kraken.train import KrakenTrainer
    from kraken.train.vgsl import VGSLRecognitionDataModule, VGSLRecognitionModel
    from threadpoolctl import threadpool_limits

    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {sorted(FORMATS)}, not {fmt!r}")
    out_dir = Path(out_dir)
    target = out_dir / f"model{FORMATS[fmt]}"
    if target.exists():
        raise FileExistsError(f"{target} exists (kraken's writers refuse to overwrite)")
    if val_lines is None:
        val_lines = [line for n, line in enumerate(lines) if n % 10 == 9]
        lines = [line for n, line in enumerate(lines) if n % 10 != 9]
    if not lines or not val_lines:
        raise ValueError("need at least one training and one validation line")
    log = log if log is not None else TrainingLog()

    data_config = VGSLRecognitionTrainingDataConfig(
        format_type="path",
        training_data=_write_lines(lines, out_dir / "lines" / "train"),
        evaluation_data=_write_lines(val_lines, out_dir / "lines" / "val"),
        linetype=linetype,
        num_workers=0,  # no loader processes on a busy machine
    )
    config = VGSLRecognitionTrainingConfig(
        spec=spec,
        epochs=epochs,
        quit="fixed",  # VGSL's default, "early", adds an EarlyStopping callback
        lrate=lrate,
        batch_size=batch_size,  # the loaders take it from here, not from the data config
        weights_format=fmt,
    )

    class _Record(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            self.first = len(log.losses)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            loss = outputs["loss"] if isinstance(outputs, dict) else outputs
            log.losses.append(float(loss.detach()))

        def on_train_epoch_end(self, trainer, pl_module):
            epoch = log.losses[self.first :]
            log.epoch_losses.append(sum(epoch) / max(len(epoch), 1))

        def on_validation_end(self, trainer, pl_module):
            # after the module's on_validation_epoch_end, which logs val_metric
            log.val_metric.append(float(trainer.callback_metrics["val_metric"]))

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1), warnings.catch_warnings():
            for message in QUIET:
                warnings.filterwarnings("ignore", message=message)
            L.seed_everything(seed, verbose=False)
            data_module = VGSLRecognitionDataModule(data_config)
            trainer = KrakenTrainer(
                accelerator="cpu",
                devices=1,
                precision="32-true",
                max_epochs=epochs,
                min_epochs=epochs,  # KrakenTrainer's own default is 5
                enable_progress_bar=False,
                enable_summary=False,
                enable_model_summary=False,
                enable_checkpointing=False,  # the one checkpoint is written below
                num_sanity_val_steps=0,
                default_root_dir=str(out_dir),
                callbacks=[_Record()],
            )
            with trainer.init_module(empty_init=True):
                model = VGSLRecognitionModel(config)
            trainer.fit(model, data_module)
            # as `ketos train` ends: a Lightning checkpoint converted to a weights file
            checkpoint = out_dir / "checkpoints" / "last.ckpt"
            trainer.save_checkpoint(checkpoint, weights_only=False)
            return Path(convert_models([checkpoint], target, weights_format=fmt))
    finally:
        torch.set_num_threads(threads)
