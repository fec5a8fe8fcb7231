"""Ingest and rasterise: read PDF / TIFF / JPEG / JPEG 2000 / PNG, validate, hash, and yield page
images (camera captures turned upright by their EXIF orientation).

Bad input raises `InputError`, which names the file, the page (when it is one page) and the reason,
so one bad document or page never takes the rest of a job down with it.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pypdfium2 as pdfium
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

# pdfium is not thread-safe: every call into it goes through this lock.
PDFIUM_LOCK = threading.RLock()

MEDIA_TYPES = {
    "application/pdf": "pdf",
    "image/tiff": "tiff",
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/jp2": "jp2",  # JPEG 2000, as many archives keep their masters
}
SUFFIXES = {".pdf", ".tif", ".tiff", ".jpg", ".jpeg", ".png", ".jp2", ".j2k", ".jpf", ".jpx"}
KINDS = "PDF, TIFF, JPEG, JPEG 2000 or PNG"
EXIF_ORIENTATION = 0x0112


class InputError(Exception):
    """A document or one of its pages cannot be read; the message says which and why."""

    def __init__(self, source: str, reason: str, page: int | None = None):
        self.source, self.reason, self.page = source, reason, page
        where = source if page is None else f"{source}, page {page}"
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class SourceInfo:
    path: Path
    name: str  # output name: relative path without suffix, '/'-separated
    sha256: str
    media_type: str
    page_count: int

    @property
    def ext(self) -> str:
        return MEDIA_TYPES[self.media_type]


def sniff_media_type(head: bytes) -> str | None:
    """Media type from magic bytes; the file name's suffix is not trusted."""
    if head.startswith(b"%PDF-") or b"%PDF-" in head[:1024]:
        return "application/pdf"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "image/tiff"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    # a JP2 file's signature box, or a bare JPEG 2000 codestream
    if head.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n") or head.startswith(b"\xff\x4f\xff\x51"):
        return "image/jp2"
    return None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def discover(inputs: Iterable[Path]) -> Iterator[tuple[Path, str]]:
    """(file, output name) for each input; folders are walked recursively in sorted order.

    Inside a folder the output name keeps the relative path, so `a/x.pdf` and `b/x.pdf` stay apart.
    Named files are taken whatever their suffix (ingest then says if they are not PDFs or images).
    Two inputs never share an output name.
    """
    seen: set[str] = set()
    for path, name in _candidates(inputs):
        if name in seen:  # x.pdf beside x.jpg: keep both, the second one by its full file name
            name = f"{name}.{path.suffix.lstrip('.').lower()}"
        seen.add(name)
        yield path, name


def _candidates(inputs: Iterable[Path]) -> Iterator[tuple[Path, str]]:
    for item in inputs:
        if item.is_dir():
            for path in sorted(p for p in item.rglob("*") if p.is_file()):
                if path.suffix.lower() in SUFFIXES and not path.name.startswith("."):
                    yield path, path.relative_to(item).with_suffix("").as_posix()
        else:
            yield item, item.stem


def ingest(path: Path, name: str | None = None, max_file_mb: int = 2048) -> SourceInfo:
    """Validate a source file and count its pages, without rendering anything."""
    label = str(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(2048)
    except FileNotFoundError:
        raise InputError(label, "file not found") from None
    except IsADirectoryError:
        raise InputError(label, "is a directory") from None
    except OSError as exc:
        raise InputError(label, f"cannot read file ({exc.strerror or exc})") from None
    if size == 0:
        raise InputError(label, "empty file (0 bytes)")
    if size > max_file_mb * 1024 * 1024:
        raise InputError(label, f"file is {size / 2**20:.0f} MB, over the {max_file_mb} MB limit")
    media_type = sniff_media_type(head)
    if media_type is None:
        raise InputError(label, f"not a {KINDS} file")
    pages = count_pages(path, media_type)
    if pages == 0:
        raise InputError(label, "document has zero pages")
    return SourceInfo(path, name or path.stem, file_sha256(path), media_type, pages)


def count_pages(path: Path, media_type: str) -> int:
    label = str(path)
    if media_type == "application/pdf":
        with PDFIUM_LOCK:
            pdf = _open_pdf(path)
            try:
                return len(pdf)
            finally:
                pdf.close()
    try:
        with Image.open(path) as image:
            return getattr(image, "n_frames", 1)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InputError(label, f"corrupt or truncated image ({exc})") from None


def _open_pdf(path: Path) -> pdfium.PdfDocument:
    try:
        return pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        raise InputError(str(path), _why_pdf_failed(path, exc)) from None


def _why_pdf_failed(path: Path, exc: pdfium.PdfiumError) -> str:
    """PDFium's last-error code can be stale across documents, so read the file to tell why."""
    with path.open("rb") as handle:
        data = handle.read(64 << 20)
    if re.search(rb"/Encrypt\s", data):
        return "PDF is password-protected"
    if re.search(rb"/Count\s+0\b", data) and not re.search(rb"/Type\s*/Page\b", data):
        return "document has zero pages"
    return "corrupt or truncated PDF (PDFium could not parse it)"


def iter_pages(
    info: SourceInfo, dpi: int, max_pixels: int, pages: Iterable[int] | None = None
) -> Iterator[tuple[int, Image.Image | InputError, int]]:
    """Yield (page number, image or the page's InputError, dpi) one page at a time.

    Only one page image is alive at a time here, so memory does not grow with page count.
    """
    wanted = set(pages) if pages is not None else None
    if info.media_type == "application/pdf":
        yield from _iter_pdf(info, dpi, max_pixels, wanted)
    else:
        yield from _iter_image(info, dpi, max_pixels, wanted)


def _iter_pdf(info: SourceInfo, dpi: int, max_pixels: int, wanted: set[int] | None):
    label = str(info.path)
    with PDFIUM_LOCK:
        pdf = _open_pdf(info.path)
    try:
        for index in range(info.page_count):
            number = index + 1
            if wanted is not None and number not in wanted:
                continue
            yield number, _render_pdf_page(pdf, index, label, dpi, max_pixels), dpi
    finally:
        with PDFIUM_LOCK:
            pdf.close()


def _render_pdf_page(pdf, index: int, label: str, dpi: int, max_pixels: int):
    number = index + 1
    try:
        with PDFIUM_LOCK:
            page = pdf[index]
            width, height = page.get_size()
            pixels = (width * dpi / 72) * (height * dpi / 72)
            if pixels > max_pixels:
                page.close()
                return InputError(
                    label, f"page is {pixels / 1e6:.0f} MP at {dpi} dpi, over the limit", number
                )
            bitmap = page.render(scale=dpi / 72, grayscale=False)
            image = bitmap.to_pil().convert("RGB")
            bitmap.close()
            page.close()
            return image
    except pdfium.PdfiumError as exc:
        return InputError(label, f"cannot render page ({exc})", number)


def _iter_image(info: SourceInfo, default_dpi: int, max_pixels: int, wanted: set[int] | None):
    label = str(info.path)
    try:
        container = Image.open(info.path)
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(label, f"corrupt or truncated image ({exc})") from None
    with container:
        for index, frame in enumerate(ImageSequence.Iterator(container)):
            number = index + 1
            if wanted is not None and number not in wanted:
                continue
            yield number, *_load_frame(frame, label, number, default_dpi, max_pixels)


def _load_frame(frame: Image.Image, label: str, number: int, default_dpi: int, max_pixels: int):
    dpi = _image_dpi(frame) or default_dpi
    if frame.width * frame.height > max_pixels:
        megapixels = frame.width * frame.height / 1e6
        return InputError(label, f"image is {megapixels:.0f} MP, over the limit", number), dpi
    try:
        return _upright(frame).convert("RGB"), dpi
    except (OSError, SyntaxError, ValueError) as exc:
        return InputError(label, f"corrupt or truncated image data ({exc})", number), dpi


def _upright(frame: Image.Image) -> Image.Image:
    """The page as a viewer shows it: a camera capture's EXIF orientation applied (the sensor's
    pixels of a page shot in portrait lie sideways, and a recogniser reads them as noise)."""
    if frame.getexif().get(EXIF_ORIENTATION, 1) in (2, 3, 4, 5, 6, 7, 8):
        return ImageOps.exif_transpose(frame)
    return frame


def _image_dpi(image: Image.Image) -> int | None:
    value = image.info.get("dpi")
    if not value:
        return None
    try:
        dpi = round(float(value[0]))
    except (TypeError, ValueError, IndexError):
        return None
    return dpi if 50 <= dpi <= 2400 else None
