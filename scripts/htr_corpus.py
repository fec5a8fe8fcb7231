"""The training corpus of the shipped recogniser: the pages `pages.tsv` lists, taken from bare
clones of their repositories at the listed commits, and the seeded whole-page validation split.

Used by `build_handwriting_model.py`; kept apart so that what is trained on, and what is held
out to judge the model, is read in one place.
"""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

from manuscribe.training.groundtruth import read_page
from manuscribe.training.lines import crop_lines
from manuscribe.training.run import split_pages

ROOT = Path(__file__).resolve().parent.parent
PAGES_TSV = ROOT.parent / "shared" / "datasets" / "htr-training" / "pages.tsv"
MIRRORS = ROOT.parent / ".mirror"
SEED = 20261201
VAL_FRACTION = 0.06


def read_pages_tsv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))


def git_dir(mirrors: Path, repo: str) -> Path:
    """A bare clone of `repo` under `mirrors` (as the fetch tool lays them out, or cloned here)."""
    owner_name = repo.replace("/", "+")
    for candidate in (mirrors / owner_name / "repo", mirrors / f"{owner_name}.git"):
        if candidate.is_dir():
            return candidate
    target = mirrors / f"{owner_name}.git"
    subprocess.run(
        ["git", "clone", "--bare", f"https://github.com/{repo}", str(target)], check=True
    )
    return target


def extract(git: Path, commit: str, path: str, target: Path) -> None:
    if target.is_file() and target.stat().st_size > 0:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    data = subprocess.run(
        ["git", "--git-dir", str(git), "show", f"{commit}:{path}"], check=True, capture_output=True
    ).stdout
    target.write_bytes(data)


def crop_page(job: tuple) -> tuple[tuple, list, list[str], str | None]:
    """Parse and crop one page (in a worker process); the main process writes the store."""
    xml, image = job[0], job[1]
    page = read_page(Path(xml), Path(image))
    if page.error:
        return job, [], page.problems, page.error
    return job, list(crop_lines(page)), page.problems, None


def split(samples: list) -> tuple[list, list]:
    """Whole-page split, seeded: the same validation pages on every rebuild."""
    by_collection: dict[str, set[str]] = {}
    for sample in samples:
        by_collection.setdefault(sample.collection, set()).add(sample.page)
    val_pages: set[str] = set()
    for pages in by_collection.values():  # collections of fewer than 4 pages stay whole
        if len(pages) >= 4:
            val_pages |= split_pages(sorted(pages), VAL_FRACTION, SEED)
    train = [s for s in samples if s.page not in val_pages]
    val = [s for s in samples if s.page in val_pages]
    return train, val
