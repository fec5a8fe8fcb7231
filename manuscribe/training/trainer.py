"""CTC fine-tuning of the line recogniser, on CPU or GPU, resumable, time-boxed.

One loop serves `manuscribe train` and the script that rebuilds the shipped model. It samples
lines (optionally weighted, e.g. to balance collections), batches them by width, evaluates on
whole held-out pages every `eval_every` lines, keeps the best model as ONNX, and checkpoints so an
interrupted run resumes where it stopped. Checkpoints hold model, optimiser, random state, counters.

What trains: `freeze="backbone"` trains the SVTR neck and the head, plus the backbone's last
`trainable_stages` stages (0 by default; see manuscribe.training.split); `freeze="none"` trains
everything. Learning rate: linear warm-up over `warmup_steps`, then constant (`lr_decay="none"`) or
times a cosine from 1 to 1/20 over the run's budget (`lr_decay="cosine"`: the elapsed fraction of
`max_minutes` when set, else of the lines `epochs` allows; a resumed run decays over its own).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from rapidfuzz.distance import Levenshtein
from torch import nn

from manuscribe.training.augment import augment_line
from manuscribe.training.lines import LineSample, LineStore
from manuscribe.training.recognizer import BLANK, LineRecognizer, export_onnx
from manuscribe.training.split import OnnxBackbone, backbone_modules, freeze_front, tail_module

FRAME_STRIDE = 8  # input columns per output frame of the PP-OCR recogniser
LR_FLOOR = 1 / 20  # where the cosine decay ends, as a fraction of `lr`


@dataclass
class TrainConfig:
    out: Path  # the ONNX model to write; checkpoints go to <out>.ckpt/
    max_minutes: float | None = None
    epochs: float | None = None
    batch_size: int = 16
    lr: float = 3e-4
    warmup_steps: int = 100
    freeze: str = "backbone"  # "backbone" (train neck + head), "none"
    trainable_stages: int = 0  # with freeze="backbone": the backbone's last N stages train too
    lr_decay: str = "none"  # "cosine": to lr/20 over the run's budget (max_minutes, else epochs)
    eval_every: int = 2000  # lines between validations
    max_val_lines: int = 600  # per validation; the final one uses all
    augment: bool = True
    seed: int = 1
    device: str = "auto"
    threads: int = 0
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class TrainState:
    step: int = 0
    lines_seen: int = 0
    best_cer: float = float("inf")
    history: list[dict] = field(default_factory=list)
    warmup_from: int = 0  # the step the learning-rate warm-up (re)started at


def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def to_batch(images: list[np.ndarray], stretch: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Grey crops (height 48) -> the recogniser's input [N, 3, 48, W], padded with 0 on the
    right as rapidocr pads, and the number of valid output frames per line."""
    width = max(max(img.shape[1] for img in images), 32)
    batch = np.zeros((len(images), 3, images[0].shape[0], width), dtype=np.float32)
    for index, img in enumerate(images):
        batch[index, :, :, : img.shape[1]] = img.astype(np.float32) / 127.5 - 1.0
    frames = [max(1, math.floor(img.shape[1] * stretch / FRAME_STRIDE)) for img in images]
    return torch.from_numpy(batch), torch.tensor(frames, dtype=torch.long)


def greedy_decode(logits: torch.Tensor, classes: list[str], frames: torch.Tensor) -> list[str]:
    best = logits.argmax(-1).cpu().numpy()
    texts = []
    for row, length in zip(best, frames.tolist(), strict=True):
        previous, chars = BLANK, []
        for index in row[:length]:
            if index != previous and index != BLANK:
                chars.append(classes[index])
            previous = index
        texts.append(" ".join("".join(chars).split()))
    return texts


def freeze_backbone(recognizer: LineRecognizer, trainable_stages: int = 0) -> list[str]:
    """Freeze the backbone (PP-HGNet, up to its final pooling) but its last `trainable_stages`
    stages; those, the neck (SVTR blocks) and the head stay trainable. Returns the frozen module
    names."""
    return freeze_front(recognizer, trainable_stages)


def _legacy_optimizer_params(recognizer: LineRecognizer, count: int) -> list[str] | None:
    """The parameters, in order, of a checkpoint's optimiser from before checkpoints named them:
    all of them (freeze="none"), or all but the backbone modules' (freeze="backbone", which left
    the backbone's bias constants in the optimiser, untouched on a CPU)."""
    names = [name for name, _ in recognizer.named_parameters()]
    if count == len(names):
        return names
    frozen = {f"body.{module}." for module in backbone_modules(recognizer)}
    legacy = [n for n in names if not any(n.startswith(prefix) for prefix in frozen)]
    return legacy if count == len(legacy) else None


class Trainer:
    def __init__(
        self,
        recognizer: LineRecognizer,
        store: LineStore,
        train: list[LineSample],
        val: list[LineSample],
        config: TrainConfig,
        weights: list[float] | None = None,
        log: Callable[[str], None] = print,
        on_step: Callable[[TrainState], None] | None = None,
    ):
        self.model, self.store, self.config, self.log = recognizer, store, config, log
        self.train_samples, self.val_samples = train, val
        self.weights = weights
        self.on_step = on_step
        self.device = pick_device(config.device)
        if config.threads > 0:
            torch.set_num_threads(config.threads)
        if config.freeze not in ("backbone", "none") or config.lr_decay not in ("cosine", "none"):
            raise ValueError(f"freeze={config.freeze!r}, lr_decay={config.lr_decay!r}: unknown")
        if config.trainable_stages and config.freeze != "backbone":
            raise ValueError("trainable_stages is for freeze='backbone' (freeze='none' trains all)")
        if config.lr_decay == "cosine" and config.max_minutes is None and config.epochs is None:
            raise ValueError(
                "lr_decay='cosine' needs a budget to decay over: max_minutes or epochs"
            )
        stages = config.trainable_stages
        self.frozen = freeze_backbone(recognizer, stages) if config.freeze == "backbone" else []
        # BatchNorm in the trainable stages keeps its statistics (eval mode, like the frozen
        # part): batches are small (16) and of mixed widths, so their statistics are noisy. (The
        # PP-OCR backbone has BatchNorm folded into its convolutions; the neck's three do train.)
        trainable = set(backbone_modules(recognizer)) - set(self.frozen) if self.frozen else ()
        self.fixed = self.frozen + [name for name in sorted(trainable) if isinstance(
            recognizer.body.get_submodule(name), nn.modules.batchnorm._BatchNorm)]  # fmt: skip
        self.model.to(self.device)
        # on a CPU the frozen front runs in onnxruntime and only the rest in PyTorch
        self.backbone = self.tail = None
        if self.frozen and self.device.type == "cpu":
            self.backbone = OnnxBackbone(recognizer, config.threads, stages)
            self.tail = tail_module(recognizer, stages)
        self.index = {c: i for i, c in enumerate(recognizer.classes)}
        named = [(n, p) for n, p in recognizer.named_parameters() if p.requires_grad]
        self.param_names = [name for name, _ in named]
        self.optimizer = torch.optim.AdamW([p for _, p in named], lr=config.lr, weight_decay=1e-4)
        self.ctc = nn.CTCLoss(blank=BLANK, zero_infinity=True, reduction="mean")
        self.state = TrainState()
        self.rng = random.Random(config.seed)
        self.checkpoints = config.out.with_name(config.out.name + ".ckpt")
        self._run_start, self._run_lines = time.monotonic(), 0

    # -- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        payload = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "optimizer_params": self.param_names,
            "state": asdict(self.state),
            "rng": self.rng.getstate(),
            "charset": self.model.charset,
            "stretch": self.model.stretch,
        }
        tmp = self.checkpoints / "last.pt.tmp"
        torch.save(payload, tmp)
        tmp.replace(self.checkpoints / "last.pt")

    def resume(self) -> bool:
        path = self.checkpoints / "last.pt"
        if not path.is_file():
            return False
        payload = torch.load(path, map_location=self.device, weights_only=False)
        if payload["charset"] != self.model.charset:
            raise ValueError(f"{path}: checkpoint charset differs from the model's")
        self.model.load_state_dict(payload["model"])
        if self.backbone is not None:  # the onnxruntime front is a copy of the weights
            self.backbone = OnnxBackbone(self.model, self.config.threads,
                                         self.config.trainable_stages)  # fmt: skip
        self.state = TrainState(**payload["state"])
        self.rng.setstate(payload["rng"])
        self._run_start, self._run_lines = time.monotonic(), self.state.lines_seen
        self.log(f"resumed from {path}: {self.state.lines_seen} lines seen")
        self._load_optimizer(payload)
        return True

    def _load_optimizer(self, payload: dict) -> None:
        """The checkpoint's optimiser state; when other parameters train now (more stages
        unfrozen), a new optimiser that keeps each remaining parameter's state (by name), and the
        learning-rate warm-up starts again if parameters without one join."""
        saved = payload["optimizer"]
        count = sum(len(group["params"]) for group in saved["param_groups"])
        names = payload.get("optimizer_params") or _legacy_optimizer_params(self.model, count)
        if names == self.param_names:
            self.optimizer.load_state_dict(saved)
            return
        old = {}
        if names is not None and len(saved["param_groups"]) == 1:
            ids = saved["param_groups"][0]["params"]
            old = {name: saved["state"][i] for name, i in zip(names, ids, strict=True)
                   if i in saved["state"]}  # fmt: skip
        params = dict(self.model.named_parameters())
        state = {i: old[name] for i, name in enumerate(self.param_names)
                 if name in old and old[name]["exp_avg"].shape == params[name].shape}  # fmt: skip
        fresh = self.optimizer.state_dict()
        self.optimizer.load_state_dict({**fresh, "state": state})
        new = len(self.param_names) - len(state)
        if new:
            self.state.warmup_from = self.state.step
        self.log(f"optimizer rebuilt: the trainable parameters differ from the checkpoint's; "
                 f"{len(state)} tensors keep their state, {new} start fresh"
                 + (f" (learning-rate warm-up restarts, {self.config.warmup_steps} steps)"
                    if new else ""))  # fmt: skip

    # -- data --------------------------------------------------------------------------------
    def _targets(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = [[self.index[c] for c in text if c in self.index] for text in texts]
        flat = torch.tensor([i for row in ids for i in row], dtype=torch.long)
        return flat, torch.tensor([len(row) for row in ids], dtype=torch.long)

    def _batches(self):
        """Endless batches: a pool of sampled lines sorted by width, cut into batches, shuffled."""
        size = self.config.batch_size
        while True:
            if self.weights:
                pool = self.rng.choices(self.train_samples, weights=self.weights, k=size * 32)
            else:
                pool = self.rng.sample(self.train_samples, min(len(self.train_samples), size * 32))
            images = []
            for sample in pool:
                img = self.store.load(sample)
                if self.config.augment:
                    img = augment_line(img, self.rng)
                images.append((img, sample.text))
            images.sort(key=lambda pair: pair[0].shape[1])
            chunks = [images[i : i + size] for i in range(0, len(images), size)]
            self.rng.shuffle(chunks)
            yield from chunks

    # -- loop --------------------------------------------------------------------------------
    def _progress(self) -> float:
        """How far this run is through its budget, 0 to 1: time if `max_minutes`, else lines."""
        config = self.config
        if config.max_minutes:
            elapsed = (time.monotonic() - self._run_start) / (config.max_minutes * 60)
        elif config.epochs is not None:
            limit = int(config.epochs * len(self.train_samples))
            elapsed = (self.state.lines_seen - self._run_lines) / max(1, limit - self._run_lines)
        else:
            elapsed = 0.0
        return min(1.0, max(0.0, elapsed))

    def _lr(self) -> float:
        since = self.state.step - self.state.warmup_from
        lr = self.config.lr * min(1.0, (since + 1) / max(1, self.config.warmup_steps))
        if self.config.lr_decay == "cosine":
            lr *= LR_FLOOR + (1 - LR_FLOOR) * 0.5 * (1 + math.cos(math.pi * self._progress()))
        return lr

    def train(self) -> TrainState:
        config, start = self.config, time.monotonic()
        self._run_start, self._run_lines = start, self.state.lines_seen
        budget = config.max_minutes * 60 if config.max_minutes else None
        limit = int(config.epochs * len(self.train_samples)) if config.epochs is not None else None
        self.model.train()
        self._set_frozen_eval()
        if not self.state.history:  # the starting point, so every run shows what it gained
            self.evaluate_and_keep(float("nan"), 0.0)
        next_eval = (self.state.lines_seen // config.eval_every + 1) * config.eval_every
        window_lines, window_start, losses = 0, time.monotonic(), []
        for chunk in self._batches():
            if limit is not None and self.state.lines_seen >= limit:
                break
            if budget is not None and time.monotonic() - start > budget:
                self.log("time budget reached")
                break
            loss = self._step(chunk)
            losses.append(loss)
            window_lines += len(chunk)
            if self.on_step is not None:
                self.on_step(self.state)
            if self.state.lines_seen >= next_eval:
                rate = window_lines / max(1e-6, time.monotonic() - window_start)
                self.evaluate_and_keep(np.mean(losses), rate)
                next_eval += config.eval_every
                window_lines, window_start, losses = 0, time.monotonic(), []
        if not self.state.history or self.state.history[-1]["lines_seen"] != self.state.lines_seen:
            rate = window_lines / max(1e-6, time.monotonic() - window_start)
            self.evaluate_and_keep(np.mean(losses) if losses else float("nan"), rate)
        return self.state

    def _set_frozen_eval(self) -> None:
        for name in self.fixed:
            self.model.body.get_submodule(name).eval()

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        if self.backbone is not None:
            with torch.no_grad():
                features = self.backbone(batch)
            return self.tail(features)
        return self.model(batch.to(self.device))

    def _step(self, chunk: list[tuple[np.ndarray, str]]) -> float:
        images, texts = zip(*chunk, strict=True)
        batch, frames = to_batch(list(images), self.model.stretch)
        targets, target_lengths = self._targets(list(texts))
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr()
        logits = self.forward(batch)
        frames = frames.clamp(max=logits.shape[1])
        log_probs = logits.log_softmax(-1).transpose(0, 1)
        loss = self.ctc(log_probs, targets, frames, target_lengths)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
        self.optimizer.step()
        self.state.step += 1
        self.state.lines_seen += len(chunk)
        return float(loss.detach())

    # -- validation --------------------------------------------------------------------------
    def validate(self, samples: list[LineSample]) -> dict:
        """CER on `samples`, overall and per collection (same normalisation as eval)."""
        self.model.eval()
        errors, chars = defaultdict(int), defaultdict(int)
        ordered = sorted(samples, key=lambda s: s.file)
        with torch.no_grad():
            for i in range(0, len(ordered), 16):
                part = ordered[i : i + 16]
                batch, frames = to_batch([self.store.load(s) for s in part], self.model.stretch)
                logits = self.forward(batch)
                frames = frames.clamp(max=logits.shape[1])
                for sample, text in zip(part, greedy_decode(logits, self.model.classes, frames),
                                        strict=True):  # fmt: skip
                    distance = Levenshtein.distance(sample.text, text)
                    for group in ("all", sample.collection):
                        errors[group] += distance
                        chars[group] += len(sample.text)
        self.model.train()
        self._set_frozen_eval()
        return {group: round(errors[group] / max(1, chars[group]), 4) for group in chars}

    def val_subset(self) -> list[LineSample]:
        """A fixed, collection-stratified subset for the periodic validations."""
        limit = self.config.max_val_lines
        if len(self.val_samples) <= limit:
            return self.val_samples
        by_collection = defaultdict(list)
        for sample in sorted(self.val_samples, key=lambda s: s.file):
            by_collection[sample.collection].append(sample)
        share = max(1, limit // len(by_collection))
        rng = random.Random(self.config.seed)
        return [
            s for group in by_collection.values() for s in rng.sample(group, min(share, len(group)))
        ]

    def evaluate_and_keep(self, loss: float, rate: float) -> dict:
        cer = self.validate(self.val_subset()) if self.val_samples else {"all": float("nan")}
        record = {"lines_seen": self.state.lines_seen, "step": self.state.step,
                  "loss": round(float(loss), 4), "lines_per_s": round(rate, 2),
                  "lr": float(f"{self._lr():.3g}"), "val_cer": cer,
                  "time": time.strftime("%Y-%m-%dT%H:%M:%S")}  # fmt: skip
        self.state.history.append(record)
        improved = cer["all"] < self.state.best_cer or not self.config.out.is_file()
        if improved and not math.isnan(cer["all"]):
            self.state.best_cer = cer["all"]
        if improved:
            metadata = {**self.config.metadata, "manuscribe_val_cer": json.dumps(cer),
                        "manuscribe_lines_seen": str(self.state.lines_seen)}  # fmt: skip
            export_onnx(self.model, self.config.out, metadata)
            self.model.train()
            self._set_frozen_eval()
        self.save_checkpoint()
        (self.checkpoints / "history.jsonl").open("a").write(json.dumps(record) + "\n")
        self.log(
            f"lines {self.state.lines_seen:>7}  loss {loss:.3f}  {rate:.1f} lines/s  "
            f"lr {record['lr']:.2e}  "
            f"val CER {cer.get('all', float('nan')):.4f}" + ("  (best, saved)" if improved else "")
        )
        return cer
