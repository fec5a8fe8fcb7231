"""The `manuscribe` command line: embedded `run` and `eval`; distributed commands in producer/."""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from manuscribe import __version__, train_cli
from manuscribe import cli_options as opt
from manuscribe.correctors import CorrectorError
from manuscribe.engines import EngineError
from manuscribe.report import cli as report_cli

app = typer.Typer(
    help="Digitise handwritten archives: structured OCR, language ID and LLM correction.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        print(f"manuscribe {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


@app.command()
def run(
    inputs: Annotated[
        list[Path], typer.Argument(help="PDF / TIFF / JPEG / JPEG 2000 / PNG files or folders.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("out"),
    engine: opt.Engine = None,
    ocr_model: opt.OcrModel = None,
    ocr_lm: opt.OcrLm = None,
    seg_model: opt.SegModel = None,
    corrector: opt.Corrector = None,
    model: opt.Model = None,
    lang: opt.Lang = None,
    dpi: opt.Dpi = None,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", help="Pages in parallel.")] = None,
    formats: opt.Formats = None,
    preprocess: opt.Preprocess = None,
) -> None:
    """Run the whole pipeline on this machine; write <out>/<name>.<format> per document."""
    from manuscribe.pipeline import CACHE_DIR
    from manuscribe.pipeline import run as run_pipeline

    try:
        settings = opt.settings_from_flags(
            engine=engine,
            ocr_model=ocr_model,
            ocr_language_model=ocr_lm,
            seg_model=seg_model,
            corrector=corrector,
            model=model,
            lang=lang,
            dpi=dpi,
            jobs=jobs,
            formats=formats,
            preprocess=preprocess,
        )
    except ValueError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("pages"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    )
    task = progress.add_task("recognising", total=None)
    try:
        with progress:
            summary = run_pipeline(
                inputs,
                out,
                settings,
                on_start=lambda total: progress.update(task, total=total),
                on_page=lambda name, number: progress.update(
                    task, advance=1, description=f"{name}"[-40:]
                ),
            )
    except (EngineError, CorrectorError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None

    for failure in summary.failures:
        where = failure.source if failure.page is None else f"{failure.source}, page {failure.page}"
        line = Text("failed: ", style="red").append(f"{where}: {failure.error}", style="default")
        console.print(line, soft_wrap=True, highlight=False)
    if summary.reused_pages:
        console.print(
            f"reused {summary.reused_pages} of {summary.pages} pages from the cache "
            f"({out / CACHE_DIR}); same inputs and settings"
        )
    table = Table(title="manuscribe run", show_header=True)
    for column in ("documents", "pages", "blocks", "failures", "seconds", "pages/s"):
        table.add_column(column, justify="right")
    table.add_row(
        str(summary.documents),
        str(summary.pages),
        str(summary.blocks),
        str(len(summary.failures)),
        f"{summary.seconds:.1f}",
        f"{summary.pages_per_second:.2f}",
    )
    console.print(table)
    console.print(f"results in [bold]{out}/[/] ({', '.join(settings.formats)})")
    if "html" in settings.formats:
        console.print(f"review report: [bold]{out / 'report' / 'index.html'}[/]")
    if summary.failures:
        console.print(f"failure records: {out / CACHE_DIR / 'jobs' / 'local' / 'failures'}/")
        raise typer.Exit(1)


@app.command(name="eval")
def evaluate(
    pred_dir: Annotated[Path, typer.Argument(help="Folder of manuscribe JSON outputs.")],
    gt: Annotated[
        Path, typer.Option("--gt", help="Ground truth: dataset JSON, or ALTO / PAGE XML (or ZIP).")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    html: Annotated[
        bool, typer.Option("--html", help="Also write PRED_DIR/report/ with per-line CER.")
    ] = False,
) -> None:
    """CER / WER against ground truth: full-page and line-aligned, before and after correction."""
    from manuscribe.evaluation import evaluate_folder, print_report
    from manuscribe.training.groundtruth import unpack_archives

    with tempfile.TemporaryDirectory() as unpacked:  # an export handed out as a ZIP
        (truth,) = unpack_archives([gt], Path(unpacked))
        report = evaluate_folder(pred_dir, truth)
        if not report["pages"]:
            console.print(f"[red]error:[/] no predictions in {pred_dir} match ground truth in {gt}")
            raise typer.Exit(2)
        if html:
            report_cli.report(pred_dir, gt=truth, images=True)
    if as_json:
        json.dump(report, sys.stdout, indent=1, ensure_ascii=False)
        print()
    else:
        print_report(report, Console())


def _register_distributed() -> None:
    """Add submit/status/results/retry/cancel/worker/flower (they import Celery lazily)."""
    from producer.cli import register

    register(app)


_register_distributed()
report_cli.register(app)  # `manuscribe report DIR`
app.command(name="train")(train_cli.train)
