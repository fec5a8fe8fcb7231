"""Peak memory of `manuscribe run` on one long PDF, against the same run on a short one.

A long document must stream page by page: peak RSS may not grow with the page count.
Prints one JSON line: peak RSS (MB) for each page count, and the growth ratio long/short.

Usage: python benchmarks/memory.py [--pages 50 500] [--engine rapidocr]
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont


def make_pdf(path: Path, pages: int) -> Path:
    """A scanned-looking PDF: `pages` A5 pages at 200 dpi, cycling three distinct page scans.

    Built with pdfium page by page, so making a long test document costs little memory itself.
    """
    import pypdfium2 as pdfium

    try:
        font = ImageFont.truetype("DejaVuSans.ttf", 40)
    except OSError:
        font = ImageFont.load_default(40)
    scans = []
    for n in range(3):
        image = Image.new("RGB", (1166, 1654), "white")
        draw = ImageDraw.Draw(image)
        for row, text in enumerate((f"Folio {n + 1}", "Registre des actes", "Archives")):
            draw.text((120, 150 + 90 * row), text, fill="black", font=font)
        scan = path.with_name(f"{path.stem}-scan{n}.jpg")
        image.save(scan, "JPEG", quality=80)
        scans.append(scan)
    pdf = pdfium.PdfDocument.new()
    width, height = 1166 * 72 / 200, 1654 * 72 / 200
    blobs = [scan.read_bytes() for scan in scans]
    try:
        for n in range(pages):
            page = pdf.new_page(width, height)
            image = pdfium.PdfImage.new(pdf)
            image.load_jpeg(io.BytesIO(blobs[n % 3]), inline=True)
            image.set_matrix(pdfium.PdfMatrix().scale(width, height))
            page.insert_obj(image)
            page.gen_content()
            page.close()
        pdf.save(path)
    finally:
        pdf.close()
    return path


def peak_rss_mb(pdf: Path, engine: str) -> float:
    """Run `manuscribe run` in a fresh process and return that process's peak RSS in MB."""
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the (larger) parent
    script = (
        "import sys\n"
        "from manuscribe.cli import app\n"
        "try:\n    app(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "status = open('/proc/self/status').read().split('VmHWM:')[1]\n"
        "print(int(status.split()[0]))\n"
    )
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run(
            [sys.executable, "-c", script, "run", str(pdf), "--out", out, "--engine", engine,
             "--corrector", "none", "--dpi", "200", "--preprocess", "never"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
    return int(done.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, nargs=2, default=[50, 500])
    parser.add_argument("--engine", default="rapidocr")
    args = parser.parse_args()
    short, long = args.pages
    with tempfile.TemporaryDirectory() as folder:
        peaks = {
            n: peak_rss_mb(make_pdf(Path(folder) / f"{n}.pdf", n), args.engine)
            for n in (short, long)
        }
    print(
        json.dumps(
            {
                "benchmark": "memory",
                "engine": args.engine,
                f"peak_rss_mb_{short}_pages": round(peaks[short], 1),
                f"peak_rss_mb_{long}_pages": round(peaks[long], 1),
                "growth_ratio": round(peaks[long] / peaks[short], 3),
                "self_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
