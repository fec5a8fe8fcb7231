"""The `manuscribe train` command (torch is imported only when it runs)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(soft_wrap=True)


def train(
    gt: Annotated[
        list[Path], typer.Argument(help="ALTO / PAGE XML with their images: folders, files, ZIPs.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The model to write (.onnx).")],
    base: Annotated[
        str | None, typer.Option(help="Model to start from: default | ppocr | PATH.onnx.")
    ] = None,
    max_minutes: Annotated[
        float | None, typer.Option(help="Stop after this long, with the best model written.")
    ] = None,
    epochs: Annotated[float | None, typer.Option(help="Passes over the training lines.")] = None,
    val_fraction: Annotated[float, typer.Option(help="Share of pages held out.")] = 0.1,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    resume: Annotated[bool, typer.Option(help="Continue from the last checkpoint.")] = False,
    batch_size: Annotated[int, typer.Option(help="Lines per step.")] = 16,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 3e-4,
    eval_every: Annotated[
        int | None, typer.Option(help="Lines between validations (default: one epoch, ≤2000).")
    ] = None,
) -> None:
    """Fine-tune the handwriting recogniser on a collection's own transcriptions.

    Then read with it: manuscribe run SCANS --ocr-model OUT.onnx
    """
    from manuscribe.training.run import train_collection

    if not out.suffix:
        out = out.with_suffix(".onnx")
    last_cer = {"value": "-"}
    progress = Progress(
        TextColumn("[bold]training"),
        BarColumn(),
        TextColumn("{task.completed:.0f} lines"),
        TextColumn("{task.fields[rate]} lines/s"),
        TextColumn("val CER {task.fields[cer]}"),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    task = progress.add_task("train", total=None, rate="-", cer="-")
    started = {"lines": None, "time": None}

    def on_step(state) -> None:
        if started["time"] is None:
            started["lines"], started["time"] = state.lines_seen, time.monotonic()
        elapsed = max(1e-6, time.monotonic() - started["time"])
        rate = (state.lines_seen - started["lines"]) / elapsed
        progress.update(task, completed=state.lines_seen, rate=f"{rate:.1f}", cer=last_cer["value"])

    def log(line: str) -> None:
        if "val CER" in line:
            last_cer["value"] = line.split("val CER")[1].split()[0]
        progress.console.print(line, soft_wrap=True, markup=False, highlight=False)

    try:
        with progress:
            report = train_collection(
                gt, out, base=base, max_minutes=max_minutes, epochs=epochs,
                val_fraction=val_fraction, device=device, resume=resume,
                batch_size=batch_size, lr=lr, eval_every=eval_every, log=log, on_step=on_step,
            )  # fmt: skip
    except ValueError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    first, best = (
        report.history[0]["val_cer"],
        min((h["val_cer"].get("all", 1.0) for h in report.history), default=None),
    )
    console.print(
        f"model: [bold]{out}[/]  ({report.pages} pages, {report.lines} lines; validation CER "
        f"{first.get('all', float('nan')):.4f} -> {best:.4f})"
    )
    console.print(f"read with it: manuscribe run SCANS --ocr-model {out}")
    if report.skipped_files:
        console.print(f"[yellow]{len(report.skipped_files)} ground-truth files skipped[/]")
        raise typer.Exit(1)
