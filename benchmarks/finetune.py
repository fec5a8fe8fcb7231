"""What `manuscribe train` gains on a collection: fine-tune on N of its pages, read its other pages
before (the shipped default) and after (the fine-tuned model), in the same run.

The collection is a folder of ALTO / PAGE XML with their images (an eScriptorium export), or a
git repository of one at a commit (`--repo PATH_OR_URL --commit C`, its XML files and images are
taken from git). Pages are split by a seeded hash of their path: N train, the rest are read.
Prints one JSON line: line-aligned CER before/after (strict and case/punctuation-insensitive),
after with the model's language model unused (`after_without_lm`), lines trained on, training
minutes and lines/s.

Usage: python benchmarks/finetune.py --repo /path/to/bare.git [--commit HEAD] [--train-pages 50]
                                     [--eval-pages 30] [--max-minutes 20] [--base default]
       python benchmarks/finetune.py --gt EXPORT_DIR ...
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def from_git(repo: str, commit: str, target: Path) -> Path:
    """Check the XML files and images of `repo` at `commit` out into `target`."""
    if not Path(repo).exists():
        subprocess.run(["git", "clone", "--bare", "-q", repo, str(target / "repo.git")], check=True)
        repo = str(target / "repo.git")
    command = ["git", "--git-dir", repo, "ls-tree", "-r", "--name-only", commit]
    listing = subprocess.run(command, check=True, capture_output=True, text=True).stdout.split("\n")
    wanted = [p for p in listing if p.lower().endswith((".xml", ".jpg", ".jpeg", ".png", ".tif"))]
    for path in wanted:
        shown = subprocess.run(["git", "--git-dir", repo, "show", f"{commit}:{path}"],
                               capture_output=True)  # fmt: skip
        if shown.returncode != 0:  # a blob the clone lacks: its page is skipped as image-less
            continue
        out = target / "gt" / path
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(shown.stdout)
    return target / "gt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--gt", type=Path)
    source.add_argument("--repo")
    parser.add_argument("--commit", default="HEAD")
    parser.add_argument("--train-pages", type=int, default=50)
    parser.add_argument("--eval-pages", type=int, default=30, help="held-out pages read (0: all)")
    parser.add_argument("--max-minutes", type=float, default=20)
    parser.add_argument("--base", default="default")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    from manuscribe.training.evalset import export_eval_page, score_folder
    from manuscribe.training.groundtruth import find_xml_files, read_page

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        gt = args.gt or from_git(args.repo, args.commit, work)
        pages = [p for p in find_xml_files([gt]) if not p.name.startswith(("htr-united", "."))]
        usable, images = [], set()
        for xml in pages:  # a scan under two XML files counts once (never on both sides)
            page = read_page(xml)
            if not page.error and page.image_path.resolve() not in images:
                images.add(page.image_path.resolve())
                usable.append((xml, page))
        usable.sort(key=lambda item: hashlib.sha1(f"{args.seed}:{item[0]}".encode()).hexdigest())
        train, held_out = usable[: args.train_pages], usable[args.train_pages :]
        held_out = held_out[: args.eval_pages or None]
        if not held_out:
            raise SystemExit(f"{len(usable)} usable pages: none left to read after training")
        train_dir = work / "train"
        for xml, page in train:  # the XML beside its image, as an export lays them out
            (train_dir / xml.parent.name).mkdir(parents=True, exist_ok=True)
            os.symlink(xml, train_dir / xml.parent.name / xml.name)
            os.symlink(page.image_path, train_dir / xml.parent.name / page.image_path.name)
        eval_dir = work / "eval"
        for index, (_, page) in enumerate(held_out):
            export_eval_page(page, eval_dir, f"page{index:04d}", collection="held-out")
        before = score_folder(eval_dir, args.base)
        model = work / "collection.onnx"
        started = time.monotonic()
        log = subprocess.run(
            [sys.executable, "-m", "manuscribe", "train", str(train_dir), "--out", str(model),
             "--base", args.base, "--max-minutes", str(args.max_minutes)],
            capture_output=True, text=True,
        )  # fmt: skip
        minutes = (time.monotonic() - started) / 60
        if not model.is_file():
            raise SystemExit(f"training wrote no model:\n{log.stdout}\n{log.stderr}")
        after = score_folder(eval_dir, str(model))
        # the fine-tuned network alone: what the collection's n-grams in the LM add
        after_greedy = score_folder(eval_dir, str(model), language_model=False)
        history = [json.loads(line) for line in (work / "collection.onnx.ckpt" / "history.jsonl")
                   .read_text().splitlines()]  # fmt: skip
    print(json.dumps({
        "benchmark": "finetune",
        "collection": str(args.gt or f"{args.repo}@{args.commit}"),
        "train_pages": len(train), "held_out_pages": len(held_out),
        "train_lines_seen": history[-1]["lines_seen"],
        "train_minutes": round(minutes, 1),
        "lines_per_s": history[-1]["lines_per_s"],
        "validation_cer": [h["val_cer"]["all"] for h in history],
        "base": args.base,
        "before": before, "after": after, "after_without_lm": after_greedy,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
