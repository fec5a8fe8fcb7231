"""Start a worker the way `manuscribe worker QUEUE` does, optionally slowed down for the tests.

MANUSCRIBE_TEST_DELAY_OCR / MANUSCRIBE_TEST_DELAY_CORRECT (seconds) stretch the recognise and
correct stages, so a test can kill a worker while a page or a batch is certainly in progress.
MANUSCRIBE_TEST_STUB_OCR=1 replaces recognition by a blank page, so the benchmark can time all
that surrounds OCR (rasterise, S3, Redis, Celery, assemble). Nothing else changes.
"""

from __future__ import annotations

import os
import sys
import time


def _slow(function, seconds: float):
    def wrapper(*args, **kwargs):
        time.sleep(seconds)
        return function(*args, **kwargs)

    return wrapper


def _blank_page(image, number, dpi, engine, settings):
    from manuscribe.model import Page

    return Page(number=number, width=image.width, height=image.height, dpi=dpi)


def main() -> None:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import workers.tasks as tasks
    from manuscribe.settings import load_settings
    from workers.app import app
    from workers.defaults import worker_argv

    ocr_delay = float(os.environ.get("MANUSCRIBE_TEST_DELAY_OCR", 0))
    correct_delay = float(os.environ.get("MANUSCRIBE_TEST_DELAY_CORRECT", 0))
    if ocr_delay:
        tasks.recognise_page = _slow(tasks.recognise_page, ocr_delay)
    if correct_delay:
        tasks.correct_pages = _slow(tasks.correct_pages, correct_delay)
    if os.environ.get("MANUSCRIBE_TEST_STUB_OCR"):
        tasks.recognise_page = _blank_page  # measures everything around OCR (benchmark)
    queue, extra = sys.argv[1], sys.argv[2:]
    argv, env = worker_argv(queue, load_settings(), extra)
    os.environ.update(env)
    app.worker_main(argv)


if __name__ == "__main__":
    main()
