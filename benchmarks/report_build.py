"""Build time, size and peak memory of the review report for 1,000 pages, against the JSON renderer.

The pages are real: three handwritten pages of ../shared/datasets/handwriting are OCR'd once
(or read from --from DIR), then cycled into documents of --per-document pages each, every page
drawn over its real scan (re-rasterised from the source PDF, as `manuscribe report` does). Peak
RSS is measured in a fresh process for a tenth of the pages and for all of them: a streaming
build does not grow with page count. With Chromium and Playwright installed, the index is
opened and timed too (load, re-filtering the lines to check, sorting a column).

Prints one JSON line. Usage:
  python benchmarks/report_build.py [--pages 1000] [--per-document 10] [--from DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATASET = REPO.parent / "shared" / "datasets" / "handwriting"
PAGES = ["poilus_AD78_0005-1", "stanford_lettre75", "mss19_boudreau-tessier_01R_P1S3SS1P019_001"]


def real_pages(folder: Path) -> Path:
    """A folder with the OCR JSON of the three real pages (runs manuscribe when it has none)."""
    if not any(folder.glob("*.json")):
        sources = [str(DATASET / f"{name}.pdf") for name in PAGES]
        subprocess.run(
            [sys.executable, "-m", "manuscribe", "run", *sources, "--out", str(folder),
             "--corrector", "none", "--formats", "json"],
            check=True, capture_output=True,
        )  # fmt: skip
    return folder


def child(folder: Path, pages: int, per_document: int, out: Path) -> dict:
    """Build the report (and, for comparison, the JSON outputs) for `pages` pages; in-process."""
    from manuscribe.model import Document
    from manuscribe.renderers.json_renderer import JsonRenderer
    from manuscribe.report.build import finish_report, write_document
    from manuscribe.report.sources import SourceFinder
    from manuscribe.storage import LocalStorage

    finder = SourceFinder(folder)
    real = []
    for path in sorted(folder.glob("*.json")):
        document = Document.model_validate_json(path.read_bytes())
        render = finder.page_image(document)
        assert render is not None, f"no source for {path}"
        real.append((document, render))

    def documents():
        for start in range(0, pages, per_document):
            chosen = [
                real[(start + n) % len(real)] for n in range(min(per_document, pages - start))
            ]
            copies = [doc.pages[0].model_copy(update={"number": n + 1}) for n, (doc, _) in
                      enumerate(chosen)]  # fmt: skip
            template = chosen[0][0]
            yield (
                template.model_copy(
                    update={"name": f"doc{start // per_document:04d}", "pages": copies}
                ),
                chosen,
            )

    def page_image_for(chosen):
        return lambda number: chosen[number - 1][1](1)  # the real page's scan, rasterised again

    sink = LocalStorage(out)
    started = time.perf_counter()
    for document, chosen in documents():
        write_document(sink, document, page_image_for(chosen))
    finish_report(sink)
    report_seconds = time.perf_counter() - started

    started = time.perf_counter()
    for document, _ in documents():
        write_document(LocalStorage(out / "boxes-only"), document, None)
    finish_report(LocalStorage(out / "boxes-only"))
    boxes_seconds = time.perf_counter() - started

    started = time.perf_counter()
    renderer = JsonRenderer()
    for document, _ in documents():
        (out / f"{document.name}.json").write_bytes(renderer.render(document, None))
    json_seconds = time.perf_counter() - started
    finder.close()
    status = Path("/proc/self/status").read_text().split("VmHWM:")[1]
    return {
        "report_seconds": round(report_seconds, 2),
        "report_boxes_only_seconds": round(boxes_seconds, 2),
        "json_seconds": round(json_seconds, 2),
        "peak_rss_mb": round(int(status.split()[0]) / 1024, 1),
    }


def run_child(folder: Path, pages: int, per_document: int, out: Path) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", "--from", str(folder), "--pages", str(pages),
         "--per-document", str(per_document), "--out", str(out)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def size_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20, 1)


def browse(index: Path) -> dict | None:
    """Load the index in headless Chromium; time loading, re-filtering and sorting (ms)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ]  # fmt: skip
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=flags)
        page = browser.new_page()
        started = time.perf_counter()
        page.goto(index.as_uri())
        page.wait_for_load_state("load")
        load_ms = (time.perf_counter() - started) * 1000
        timings = page.evaluate(
            """() => {
            const slider = document.getElementById('threshold');
            let t = performance.now();
            slider.value = 0.9; slider.dispatchEvent(new Event('input'));
            const filter = performance.now() - t;
            const th = [...document.querySelectorAll('table.pages th')][2];
            t = performance.now(); th.click();
            const sort = performance.now() - t;
            return {filter_ms: filter, sort_ms: sort,
                    rows: document.querySelectorAll('table.pages tbody tr').length};
            }"""
        )
        browser.close()
    return {"load_ms": round(load_ms), **{k: round(v, 1) for k, v in timings.items()}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--per-document", type=int, default=10)
    parser.add_argument("--from", dest="source", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.source, args.pages, args.per_document, args.out)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = real_pages(args.source or Path(tmp) / "real")
        small = run_child(folder, args.pages // 10, args.per_document, Path(tmp) / "small")
        out = Path(tmp) / "large"
        large = run_child(folder, args.pages, args.per_document, out)
        report = out / "report"
        result = {
            "benchmark": "report_build",
            "pages": args.pages,
            "documents": -(-args.pages // args.per_document),
            **large,
            "seconds_per_page": round(large["report_seconds"] / args.pages, 4),
            "report_mb": size_mb(report),
            "report_files": sum(1 for p in report.rglob("*") if p.is_file()),
            "index_kb": round((report / "index.html").stat().st_size / 1024, 1),
            "lines_js_kb": round((report / "data/lines.js").stat().st_size / 1024, 1),
            "json_mb": round(sum(p.stat().st_size for p in out.glob("*.json")) / 2**20, 1),
            f"peak_rss_mb_{args.pages // 10}_pages": small["peak_rss_mb"],
            "rss_growth": round(large["peak_rss_mb"] / small["peak_rss_mb"], 2),
            "index_in_chromium": browse(report / "index.html"),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
