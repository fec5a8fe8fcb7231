"""Distributed commands, added to the `manuscribe` Typer app by `register(app)`.

submit / status / results / retry / cancel talk to Redis and storage; worker / flower start the
long-running processes with the defaults the design asks for.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live

from manuscribe import cli_options as opt
from manuscribe.settings import load_settings

console = Console(stderr=True)
QUEUE_NAMES = ("ocr", "correct", "assemble")
CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


def _fail(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[red]error:[/] {message}")
    return typer.Exit(code)


def _print_json(data: dict) -> None:
    json.dump(data, sys.stdout, indent=1, ensure_ascii=False)
    print()


def submit(
    inputs: Annotated[list[str], typer.Argument(help="Files, folders or s3://bucket/prefix URIs.")],
    job: Annotated[str | None, typer.Option(help="Job name (default: time + random).")] = None,
    engine: opt.Engine = None,
    ocr_model: opt.OcrModel = None,
    ocr_lm: opt.OcrLm = None,
    seg_model: opt.SegModel = None,
    corrector: opt.Corrector = None,
    model: opt.Model = None,
    lang: opt.Lang = None,
    dpi: opt.Dpi = None,
    formats: opt.Formats = None,
    preprocess: opt.Preprocess = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Upload sources (once, by content hash), write the manifest, enqueue one task per page."""
    from producer.submit import SubmitError
    from producer.submit import submit as do_submit

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
            formats=formats,
            preprocess=preprocess,
        )
        result = do_submit(inputs, settings, job=job, show_progress=console.is_terminal)
    except (SubmitError, ValueError) as exc:
        raise _fail(str(exc)) from None
    for failure in result["failures"]:
        console.print(f"[red]failed:[/] {failure['source']}: {failure['error']}")
    if as_json:
        _print_json(result)
    else:
        console.print(
            f"{result['documents']} documents, {result['pages_total']} pages queued "
            f"({result['sources_uploaded']} uploaded, {result['sources_reused']} already stored)"
        )
        print(result["job"])


def _status_dict(job: str, settings) -> dict:
    if Path(job).is_dir() and (Path(job) / ".manuscribe").is_dir():
        from manuscribe.pipeline import local_status

        return local_status(Path(job))
    from producer.status import job_status

    return job_status(job, settings)


def status(
    job: Annotated[str, typer.Argument(help="Job id, or an embedded run's output folder.")],
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh until it ends.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 2.0,
) -> None:
    """Pages total / OCR done / corrected / failed, per document and in sum."""
    from producer.status import TERMINAL, JobNotFound, render_status, status_view

    settings = load_settings()
    try:
        data = _status_dict(job, settings)
        if watch and not as_json:
            with Live(status_view(data), console=Console(), auto_refresh=False) as live:
                while data["state"] not in TERMINAL:
                    time.sleep(interval)
                    data = _status_dict(job, settings)
                    live.update(status_view(data), refresh=True)
            return
        while watch and data["state"] not in TERMINAL:
            time.sleep(interval)
            data = _status_dict(job, settings)
    except (JobNotFound, FileNotFoundError) as exc:
        raise _fail(str(exc).strip("'\"")) from None
    if as_json:
        _print_json(data)
    else:
        render_status(data, Console())


def results(
    job: Annotated[str, typer.Argument(help="Job id.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to download into.")] = Path(
        "out"
    ),
) -> None:
    """Download what the job produced (results/<job>/*)."""
    from producer.manage import download_results
    from producer.status import JobNotFound

    try:
        written = download_results(job, out, load_settings())
    except JobNotFound as exc:
        raise _fail(str(exc).strip("'\"")) from None
    console.print(f"{len(written)} files in [bold]{out}/[/]")


def retry(
    job: Annotated[str, typer.Argument(help="Job id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Re-enqueue only what failed (bounded; input errors are not retried)."""
    from producer.manage import retry_job
    from producer.status import JobNotFound

    try:
        result = retry_job(job, load_settings())
    except JobNotFound as exc:
        raise _fail(str(exc).strip("'\"")) from None
    if as_json:
        _print_json(result)
        return
    for item in result["skipped"]:
        where = item["name"] + (f", page {item['page']}" if item.get("page") else "")
        console.print(f"[yellow]not retried:[/] {where}: {item['reason']}")
    console.print(f"{len(result['requeued'])} re-enqueued")


def cancel(job: Annotated[str, typer.Argument(help="Job id.")]) -> None:
    """Stop queued work for the job (tasks already running finish)."""
    from producer.manage import cancel_job
    from producer.status import JobNotFound

    try:
        result = cancel_job(job, load_settings())
    except JobNotFound as exc:
        raise _fail(str(exc).strip("'\"")) from None
    console.print(f"cancelled {job}: {result['pages_skipped']} pages will not be processed")


def worker(
    ctx: typer.Context,
    queue: Annotated[str, typer.Argument(help="ocr | correct | assemble")],
) -> None:
    """Start a Celery worker on one queue with that queue's defaults (extra args go to Celery)."""
    from workers.defaults import worker_argv

    if queue not in QUEUE_NAMES:
        raise _fail(f"unknown queue {queue!r}; choose one of: {', '.join(QUEUE_NAMES)}")
    settings = load_settings()
    argv, env = worker_argv(queue, settings, list(ctx.args))
    os.environ.update(env)  # engine threads for the pool's children
    from workers.app import app as celery_app

    celery_app.worker_main(argv)


def flower(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="HTTP port.")] = 5555,
    address: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
) -> None:
    """Flower on the broker, behind basic auth from FLOWER_BASIC_AUTH (user:password)."""
    auth = os.environ.get("FLOWER_BASIC_AUTH", "")
    if ":" not in auth or auth.startswith(":") or auth.endswith(":"):
        raise _fail("set FLOWER_BASIC_AUTH=user:password; Flower does not start without auth")
    from workers.app import app as celery_app

    # the password stays in the environment (Flower reads FLOWER_BASIC_AUTH), not in argv
    celery_app.start(
        [
            "flower",
            f"--conf={CONFIG_DIR / 'flower.py'}",
            f"--port={port}",
            f"--address={address}",
            *ctx.args,
        ]
    )


def register(app: typer.Typer) -> None:
    passthrough = {"allow_extra_args": True, "ignore_unknown_options": True}
    app.command()(submit)
    app.command()(status)
    app.command()(results)
    app.command()(retry)
    app.command()(cancel)
    app.command(context_settings=passthrough)(worker)
    app.command(context_settings=passthrough)(flower)
