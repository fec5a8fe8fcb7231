"""Rebuild manuscribe's default handwriting recogniser from the open training ground truth.

    python scripts/build_handwriting_model.py prepare   # pages.tsv -> line crops (resumable)
    python scripts/build_handwriting_model.py train --max-minutes 120 [--resume] [--device cuda]
    python scripts/build_handwriting_model.py export    # best checkpoint -> manuscribe/models/

`prepare` takes exactly the pages listed in `pages.tsv` (never whole folders: the other pages of
those repositories are kept for judging the model), from bare clones of the listed repositories at
the listed commits, and crops their lines into a line store. `train` fine-tunes rapidocr's PP-OCR
recogniser on them (`manuscribe.training.trainer`, the same code as `manuscribe train`) with a
whole-page validation split. Settings and the seed are fixed here so the shipped model can be
rebuilt; docs/models.md is its model card.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from manuscribe.training.groundtruth import read_page  # noqa: E402
from manuscribe.training.lines import LineStore, crop_lines  # noqa: E402

PAGES_TSV = ROOT.parent / "shared" / "datasets" / "htr-training" / "pages.tsv"
WORK = ROOT / "work" / "htr"
MIRRORS = ROOT.parent / ".mirror"
SEED = 20261201
MODEL_NAME = "manuscribe-htr-latin-v1"
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


def is_validation(page_id: str, collection_pages: list[str]) -> bool:
    """A stable, seeded whole-page split: the same pages every rebuild."""
    ranked = sorted(
        collection_pages, key=lambda p: hashlib.sha1(f"{SEED}:{p}".encode()).hexdigest()
    )
    count = max(1, round(VAL_FRACTION * len(ranked))) if len(ranked) >= 4 else 0
    return page_id in ranked[:count]


def _crop(job: tuple) -> tuple[tuple, list, list[str], str | None]:
    """Parse and crop one page (in a worker process); the main process writes the store."""
    xml, image = job[0], job[1]
    page = read_page(Path(xml), Path(image))
    if page.error:
        return job, [], page.problems, page.error
    return job, list(crop_lines(page)), page.problems, None


def prepare(args: argparse.Namespace) -> None:
    rows = read_pages_tsv(args.pages)
    raw = args.work / "pages"
    jobs = []
    for row in rows:
        git = git_dir(args.mirrors, row["repo"])
        base = raw / row["repo"].replace("/", "+")
        xml, image = base / row["xml_path"], base / row["image_path"]
        extract(git, row["commit"], row["xml_path"], xml)
        extract(git, row["commit"], row["image_path"], image)
        page_id = f"{row['repo']}:{row['xml_path']}"
        jobs.append((xml, image, row["repo"], page_id, row["language"]))
    print(f"{len(jobs)} pages extracted under {raw}", flush=True)
    store = LineStore(args.work / "store")
    done = store.pages_done()
    todo = [job for job in jobs if job[3] not in done]
    lines = problems = failed = 0
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for job, crops, notes, error in pool.map(_crop, todo, chunksize=4):
            problems += len(notes)
            if error:
                failed += 1
                print(f"{job[3]}: skipped: {error}", flush=True)
                continue
            lines += len(store.add_crops(crops, job[2], job[3], job[4]))
    print(f"{len(todo)} pages cropped: {lines} lines, {problems} lines left out, {failed} failed")


def split(samples: list) -> tuple[list, list]:
    """Whole-page split, seeded: the same validation pages on every rebuild."""
    by_collection: dict[str, set[str]] = {}
    for sample in samples:
        by_collection.setdefault(sample.collection, set()).add(sample.page)
    val_pages = set()
    for pages in by_collection.values():
        val_pages |= {p for p in pages if is_validation(p, sorted(pages))}
    train = [s for s in samples if s.page not in val_pages]
    val = [s for s in samples if s.page in val_pages]
    return train, val


def collection_weights(samples: list, english_boost: float) -> list[float]:
    """Sampling weights: each collection's share grows with the square root of its characters
    (so the big registers do not drown the letters), within it each line by its length; English,
    thin in the corpus, is boosted so the model does not forget it."""
    chars: dict[str, int] = {}
    for s in samples:
        chars[s.collection] = chars.get(s.collection, 0) + len(s.text)
    weights = []
    for s in samples:
        share = chars[s.collection] ** 0.5 / chars[s.collection]
        boost = english_boost if s.language == "en" else 1.0
        weights.append(share * boost * max(4, len(s.text)))
    return weights


def train(args: argparse.Namespace) -> None:
    import torch

    from manuscribe.training.charset import build_charset
    from manuscribe.training.recognizer import load_recognizer, onnx_charset
    from manuscribe.training.trainer import TrainConfig, Trainer

    torch.manual_seed(SEED)
    store = LineStore(args.work / "store")
    samples = store.samples()
    train_set, val_set = split(samples)
    print(f"{len(train_set)} training lines, {len(val_set)} validation lines "
          f"({len({s.page for s in val_set})} pages)", flush=True)  # fmt: skip
    import onnx

    from manuscribe.training.recognizer import base_model_path

    base = onnx_charset(onnx.load(str(base_model_path())))
    charset, added = build_charset(base, (s.text for s in train_set), min_count=2)
    print(f"charset: {len(charset)} characters; added to the base model: {''.join(added)}")
    recognizer, report = load_recognizer(None, charset, args.stretch)
    config = TrainConfig(
        out=args.out,
        max_minutes=args.max_minutes,
        batch_size=args.batch_size,
        lr=args.lr,
        freeze=args.freeze,
        eval_every=args.eval_every,
        seed=SEED,
        device=args.device,
        threads=args.threads,
        metadata={
            "manuscribe_model": MODEL_NAME,
            "manuscribe_base": "PP-OCRv6_rec_small (rapidocr; Apache-2.0, PaddlePaddle Authors)",
            "manuscribe_training": "scripts/build_handwriting_model.py, pages.tsv of htr-training",
            "manuscribe_settings": json.dumps({"stretch": args.stretch, "freeze": args.freeze,
                                               "lr": args.lr, "batch_size": args.batch_size,
                                               "seed": SEED}),
        },
    )  # fmt: skip
    trainer = Trainer(
        recognizer, store, train_set, val_set, config,
        weights=collection_weights(train_set, args.english_boost),
        log=lambda line: print(line, flush=True),
    )  # fmt: skip
    if args.resume:
        trainer.resume()
    trainer.train()
    print(json.dumps(trainer.state.history[-1]), flush=True)


def validation_pages(args: argparse.Namespace) -> Path:
    """The held-out pages as an eval set: each image downscaled to a long side of 1800 px (as the
    dev set is) beside a JSON in the dev set's format, so `manuscribe eval` scores them."""
    from PIL import Image

    target = args.work / "valpages"
    store = LineStore(args.work / "store")
    _, val = split(store.samples())
    rows = {f"{r['repo']}:{r['xml_path']}": r for r in read_pages_tsv(args.pages)}
    for page_id in sorted({s.page for s in val}):
        row = rows[page_id]
        base = args.work / "pages" / row["repo"].replace("/", "+")
        page = read_page(base / row["xml_path"], base / row["image_path"])
        name = hashlib.sha1(page_id.encode()).hexdigest()[:12]
        if (target / f"{name}.json").is_file() or page.error:
            continue
        target.mkdir(parents=True, exist_ok=True)
        with Image.open(page.image_path) as image:
            scale = min(1.0, 1800 / max(image.size))
            small = image.convert("RGB").resize(
                (round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS
            )
            small.save(target / f"{name}.jpg", quality=85, dpi=(200, 200))
        lines = [{"text": ln.text, "bbox": [round(v * scale) for v in ln.bbox]}
                 for ln in page.lines]  # fmt: skip
        record = {"id": name, "source": page_id, "collection": row["repo"],
                  "language": row["language"], "width": small.width, "height": small.height,
                  "lines": lines}  # fmt: skip
        (target / f"{name}.json").write_text(json.dumps(record, ensure_ascii=False))
    return target


def evaluate(args: argparse.Namespace) -> None:
    """Whole-page CER of a recogniser on the held-out pages, per collection (eval's scoring)."""
    import tempfile

    from manuscribe.evaluation import evaluate_folder, score_page
    from manuscribe.model import Document
    from manuscribe.pipeline import run
    from manuscribe.settings import load_settings

    folder = validation_pages(args)
    images = sorted(folder.glob("*.jpg"))[: args.limit or None]
    results = {}
    for model in args.models:
        with tempfile.TemporaryDirectory() as out:
            settings = load_settings(corrector="none", formats=["json"], ocr_model=model)
            run(images, Path(out), settings)
            report = evaluate_folder(Path(out), folder)
            errors: dict[str, list[int]] = {}
            for pred in Path(out).glob("*.json"):
                gt_path = folder / pred.name
                if not gt_path.is_file():
                    continue
                gt = json.loads(gt_path.read_text())
                document = Document.model_validate_json(pred.read_bytes())
                counts = score_page(document.pages[0], gt, corrected=False)["lines"]
                bucket = errors.setdefault(gt["collection"], [0, 0])
                bucket[0] += counts["char_errors"]
                bucket[1] += counts["chars"]
        results[model] = {
            "all": report["summary"]["all"]["before"]["lines"]["cer"],
            "all_loose": report["summary"]["all"]["before"]["lines_loose"]["cer"],
            "by_collection": {c: round(e / max(1, n), 4) for c, (e, n) in sorted(errors.items())},
        }
    print(json.dumps({"pages": len(images), "line_cer": results}, ensure_ascii=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--pages", type=Path, default=PAGES_TSV)
    p.add_argument("--mirrors", type=Path, default=MIRRORS)
    p.add_argument("--work", type=Path, default=WORK)
    p.add_argument("--workers", type=int, default=2)
    t = sub.add_parser("train")
    t.add_argument("--work", type=Path, default=WORK)
    t.add_argument("--out", type=Path, default=WORK / f"{MODEL_NAME}.onnx")
    t.add_argument("--max-minutes", type=float, default=None)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--lr", type=float, default=5e-4)
    t.add_argument("--freeze", choices=["backbone", "none"], default="backbone")
    t.add_argument("--stretch", type=float, default=1.5)
    t.add_argument("--eval-every", type=int, default=3000)
    t.add_argument("--english-boost", type=float, default=3.0)
    t.add_argument("--device", default="auto")
    t.add_argument("--threads", type=int, default=0)
    t.add_argument("--resume", action="store_true")
    e = sub.add_parser("evaluate")
    e.add_argument("models", nargs="+", help="ocr_model values: default, ppocr or paths")
    e.add_argument("--pages", type=Path, default=PAGES_TSV)
    e.add_argument("--work", type=Path, default=WORK)
    e.add_argument("--limit", type=int, default=0)
    args = parser.parse_args()
    if args.command == "evaluate":
        evaluate(args)
    elif args.command == "prepare":
        prepare(args)
    elif args.command == "train":
        train(args)


if __name__ == "__main__":
    main()
