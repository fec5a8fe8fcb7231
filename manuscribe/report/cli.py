"""The `manuscribe report DIR` command, added to the Typer app by `register(app)`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from manuscribe.storage import Storage

console = Console(stderr=True)


def report(
    folder: Annotated[Path, typer.Argument(help="An output folder (of `run` or `results`).")],
    gt: Annotated[
        Path | None, typer.Option("--gt", help="Ground truth: per-line CER and GT diffs.")
    ] = None,
    images: Annotated[
        bool, typer.Option("--images/--no-images", help="Draw over the page scans.")
    ] = True,
) -> None:
    """Write FOLDER/report/: index.html (worst pages first) and one view per page."""
    from manuscribe.report.folder import ReportError, build_report

    try:
        totals = build_report(folder, gt_dir=gt, storage=source_storage(), images=images)
    except ReportError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    print_totals(totals)


def source_storage() -> Storage | None:
    """The distributed mode's storage (its `sources/`), when one is configured, else None."""
    from manuscribe.settings import load_settings
    from manuscribe.storage import open_storage

    settings = load_settings()
    url = settings.storage_url
    if url.startswith("s3://") or Path(url.removeprefix("file://")).is_dir():
        return open_storage(url, settings.s3_endpoint_url)
    return None


def print_totals(totals: dict) -> None:
    console.print(
        f"report: {totals['documents']} documents, {totals['pages']} pages "
        f"({totals['failed_pages']} failed), {totals['lines']} lines in {totals['seconds']:.1f} s"
    )
    if totals.get("documents_without_scan"):
        console.print(
            f"[yellow]{totals['documents_without_scan']} documents without their scan[/] "
            "(source not found): their pages show the boxes only"
        )
    console.print(f"open [bold]{totals['index']}[/]")


def register(app: typer.Typer) -> None:
    app.command()(report)
