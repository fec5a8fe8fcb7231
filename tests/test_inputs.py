"""Ingest and rasterise: every supported format, and every kind of bad input named clearly."""

from __future__ import annotations

import pikepdf
import pytest
from PIL import Image

from manuscribe.inputs import InputError, discover, ingest, iter_pages, sniff_media_type
from tests.conftest import image_bytes, text_page


def test_pdf_from_dataset_renders_at_requested_dpi(dataset):
    info = ingest(dataset / "stanford_lettre75.pdf")
    assert info.media_type == "application/pdf" and info.page_count == 1
    assert len(info.sha256) == 64
    jpg = Image.open(dataset / "stanford_lettre75.jpg")
    (number, image, dpi), *_ = list(iter_pages(info, dpi=200, max_pixels=10**9))
    assert (number, dpi) == (1, 200)
    # the PDF page is pixels / 200 dpi, so 200 dpi gives back the JPEG's grid
    assert abs(image.width - jpg.width) <= 1 and abs(image.height - jpg.height) <= 1
    (_, image300, _), *_ = list(iter_pages(info, dpi=300, max_pixels=10**9))
    assert abs(image300.width - jpg.width * 1.5) <= 2


def test_multipage_tiff_png_and_jpeg(tmp_path):
    pages = [text_page([f"page {n}"]) for n in (1, 2, 3)]
    tiff = tmp_path / "scan.tif"
    pages[0].save(tiff, save_all=True, append_images=pages[1:], dpi=(150, 150))
    info = ingest(tiff)
    assert (info.media_type, info.page_count) == ("image/tiff", 3)
    got = list(iter_pages(info, dpi=300, max_pixels=10**9))
    assert [n for n, _, _ in got] == [1, 2, 3]
    assert all(dpi == 150 for _, _, dpi in got)  # the image's own resolution wins
    assert [n for n, _, _ in iter_pages(info, 300, 10**9, pages=[2])] == [2]

    png = tmp_path / "p.png"
    png.write_bytes(image_bytes(pages[0], "PNG"))
    jpeg = tmp_path / "p.jpeg"
    jpeg.write_bytes(image_bytes(pages[0], "JPEG"))
    assert ingest(png).media_type == "image/png"
    assert ingest(jpeg).media_type == "image/jpeg"
    (_, image, dpi), *_ = list(iter_pages(ingest(png), dpi=222, max_pixels=10**9))
    assert image.size == (1200, 900) and dpi == 222  # no dpi in the file -> the configured one


def test_media_type_is_sniffed_not_taken_from_the_suffix(tmp_path):
    fake = tmp_path / "letter.pdf"
    fake.write_text("Dear Sir, this is not a PDF at all.\n")
    with pytest.raises(InputError) as err:
        ingest(fake)
    assert str(fake) in str(err.value)
    assert "not a PDF, TIFF, JPEG, JPEG 2000 or PNG" in str(err.value)
    disguised = tmp_path / "scan.bin"
    disguised.write_bytes(image_bytes(text_page(["x"]), "PNG"))
    assert ingest(disguised).media_type == "image/png"
    assert sniff_media_type(b"GIF89a") is None


def test_truncated_pdf(tmp_path, dataset):
    data = (dataset / "stanford_lettre75.pdf").read_bytes()
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(data[:200])
    with pytest.raises(InputError) as err:
        info = ingest(broken)
        list(iter_pages(info, 200, 10**9))
    assert str(broken) in str(err.value)
    assert "corrupt or truncated PDF" in err.value.reason or "cannot render" in err.value.reason


def test_password_protected_pdf(tmp_path, dataset):
    locked = tmp_path / "locked.pdf"
    with pikepdf.open(dataset / "stanford_lettre75.pdf") as pdf:
        pdf.save(locked, encryption=pikepdf.Encryption(owner="owner", user="secret"))
    with pytest.raises(InputError) as err:
        ingest(locked)
    assert err.value.reason == "PDF is password-protected"
    assert str(locked) in str(err.value)


def test_zero_page_pdf(tmp_path):
    empty = tmp_path / "empty.pdf"
    pikepdf.new().save(empty)
    with pytest.raises(InputError, match="zero pages"):
        ingest(empty)


def test_empty_missing_and_directory_inputs(tmp_path):
    empty = tmp_path / "nothing.pdf"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty file"):
        ingest(empty)
    with pytest.raises(InputError, match="file not found"):
        ingest(tmp_path / "missing.pdf")
    dangling = tmp_path / "link.pdf"
    dangling.symlink_to(tmp_path / "gone.pdf")
    with pytest.raises(InputError, match="file not found"):
        ingest(dangling)
    with pytest.raises(InputError, match="is a directory"):
        ingest(tmp_path)


def test_page_over_pixel_limit_fails_alone(tmp_path, dataset):
    info = ingest(dataset / "stanford_lettre75.pdf")
    (number, error, _), *_ = list(iter_pages(info, dpi=300, max_pixels=1_000_000))
    assert isinstance(error, InputError)
    assert error.page == number == 1 and "over the limit" in error.reason
    png = tmp_path / "huge.png"
    png.write_bytes(image_bytes(text_page(["x"], size=(2000, 2000)), "PNG"))
    (_, error, _), *_ = list(iter_pages(ingest(png), dpi=300, max_pixels=1_000_000))
    assert isinstance(error, InputError) and "4 MP" in error.reason


def test_truncated_image_page(tmp_path):
    data = image_bytes(text_page(["truncated"]), "PNG")
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: len(data) // 2])
    info = ingest(cut)
    (_, error, _), *_ = list(iter_pages(info, 300, 10**9))
    assert isinstance(error, InputError) and error.page == 1
    assert "corrupt or truncated image" in error.reason


def test_discover_walks_folders_and_keeps_relative_names(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder in ("a", "b"):
        (tmp_path / folder / "x.png").write_bytes(image_bytes(text_page(["x"]), "PNG"))
    (tmp_path / "a" / "notes.txt").write_text("skip me")
    found = list(discover([tmp_path]))
    assert [name for _, name in found] == ["a/x", "b/x"]
    (tmp_path / "b" / "x.jpg").write_bytes(image_bytes(text_page(["x"]), "JPEG"))
    assert [name for _, name in discover([tmp_path])] == ["a/x", "b/x", "b/x.png"]
    named = tmp_path / "a" / "notes.txt"
    assert list(discover([named])) == [(named, "notes")]  # named files are always tried


def test_jpeg_2000_masters_read_like_the_jpeg(tmp_path, dataset):
    """Archives often keep JPEG 2000 masters: a JP2 file and a bare codestream are sniffed as
    such and rasterised to the same pixels (saved losslessly here)."""
    import numpy as np

    with Image.open(dataset / "stanford_lettre75.jpg") as image:
        page = image.convert("RGB")
    for name in ("master.jp2", "master.j2k"):
        page.save(tmp_path / name)  # Pillow's JPEG 2000 default is the reversible transform
        info = ingest(tmp_path / name)
        assert (info.media_type, info.page_count, info.ext) == ("image/jp2", 1, "jp2")
        (_, decoded, _), *_ = list(iter_pages(info, dpi=200, max_pixels=10**9))
        assert np.array_equal(np.asarray(decoded), np.asarray(page)), name
    assert [name for _, name in discover([tmp_path])] == ["master", "master.jp2"]


def test_a_camera_capture_is_turned_upright_by_its_exif_orientation(tmp_path, dataset):
    """A page shot in portrait is stored sideways with EXIF orientation 6 (turn 90° clockwise to
    view): it is read as a viewer shows it."""
    import numpy as np

    with Image.open(dataset / "stanford_lettre75.jpg") as image:
        upright = image.convert("RGB")
    sensor = upright.transpose(Image.Transpose.ROTATE_90)  # what the sensor recorded
    exif = Image.Exif()
    exif[0x0112] = 6
    sensor.save(tmp_path / "photo.jpg", quality=95, exif=exif)
    (_, decoded, _), *_ = list(iter_pages(ingest(tmp_path / "photo.jpg"), 200, 10**9))
    assert decoded.size == upright.size
    difference = np.abs(np.asarray(decoded, dtype=int) - np.asarray(upright, dtype=int))
    assert difference.mean() < 3  # JPEG's loss only; sideways pixels would differ everywhere
