"""Rebuild manuscribe's default handwriting recogniser from the open training ground truth.

    python scripts/build_handwriting_model.py prepare   # pages.tsv -> line crops (resumable)
    python scripts/build_handwriting_model.py train --max-minutes 120 [--resume] [--device cuda]
    python scripts/build_handwriting_model.py export CHECKPOINT  # -> manuscribe/models/
    python scripts/build_handwriting_model.py lm MODEL.onnx  # add the character LM -> models/
    python scripts/build_handwriting_model.py evaluate default ppocr  # held-out pages

v2 was trained in three runs on one output path (each resuming the last checkpoint):
`train --max-minutes 115 --eval-every 4000 --threads 2` to 20,000 lines (backbone frozen), then
`train --resume --english-boost 10 --lr 2.5e-4 --eval-every 4000` to 44,000 lines (v1 was the best
model of this run, at 36,000), then `train --resume --english-boost 10 --lr 2.5e-4 --eval-every 3000
--trainable-stages 1 --lr-decay cosine --max-minutes 58` to 57,216 lines (best at 57,008).
v3 starts from v2's shipped file (in git at 6ee9e1a): `train --base manuscribe-htr-latin-v2.onnx
--trainable-stages 2 --lr 1.5e-4 --lr-decay cosine --english-boost 10 --eval-every 4000
--max-minutes 70 --threads 1`, then the same with `--resume --eval-every 3000 --max-minutes 25
--threads 2` (v2's own checkpoint was lost with a machine; starting from its ONNX file loses only
the optimiser's state).
v4 starts from v3's shipped file: `train --base manuscribe-htr-latin-v3.onnx --freeze none --lr 1e-4
--lr-decay cosine --english-boost 10 --eval-every 3000 --max-minutes 85 --threads 1`, stopped at
9,008 lines (its best, val CER 0.1785 -> 0.1707).
v5 is v4's file (in git at b0817dd) with the character language model of the training split added:
`lm manuscribe-htr-latin-v4.onnx` (char_lm's default settings; `train` and `export` add it too).
v6 is the same network again with an English LM of the split's English lines beside the main one:
`lm manuscribe-htr-latin-v5.onnx` (v5's file is in git at e15c58c).

`prepare` takes exactly the pages listed in `pages.tsv` (never whole folders: the other pages of
those repositories are kept for judging the model), from bare clones of the listed repositories at
the listed commits, and crops their lines into a line store. `train` fine-tunes rapidocr's PP-OCR
recogniser on them (`manuscribe.training.trainer`, the same code as `manuscribe train`) with a
whole-page validation split. Settings and the seed are fixed here so the shipped model can be
rebuilt; docs/models.md is its model card.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from htr_corpus import (  # noqa: E402
    MIRRORS,
    PAGES_TSV,
    SEED,
    crop_page,
    extract,
    git_dir,
    read_pages_tsv,
    split,
)

from manuscribe.training.groundtruth import read_page  # noqa: E402
from manuscribe.training.lines import LineStore  # noqa: E402

WORK = ROOT / "work" / "htr"
MODELS = ROOT / "manuscribe" / "models"
MODEL_NAME = "manuscribe-htr-latin-v6"
LANGUAGE_LM_LINES = 200  # fewer lines than this make no useful language model of their own


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
        for job, crops, notes, error in pool.map(crop_page, todo, chunksize=4):
            problems += len(notes)
            if error:
                failed += 1
                print(f"{job[3]}: skipped: {error}", flush=True)
                continue
            lines += len(store.add_crops(crops, job[2], job[3], job[4]))
    print(f"{len(todo)} pages cropped: {lines} lines, {problems} lines left out, {failed} failed")


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

    base = onnx_charset(onnx.load(str(args.base or base_model_path())))
    charset, added = build_charset(base, (s.text for s in train_set), min_count=2)
    print(f"charset: {len(charset)} characters; added to the base model: {''.join(added)}")
    recognizer, report = load_recognizer(args.base, charset, args.stretch)
    config = TrainConfig(
        out=args.out,
        max_minutes=args.max_minutes,
        batch_size=args.batch_size,
        lr=args.lr,
        freeze=args.freeze,
        trainable_stages=args.trainable_stages,
        lr_decay=args.lr_decay,
        eval_every=args.eval_every,
        seed=SEED,
        device=args.device,
        threads=args.threads,
        metadata={
            "manuscribe_model": MODEL_NAME,
            "manuscribe_base": "PP-OCRv6_rec_small (rapidocr; Apache-2.0, PaddlePaddle Authors)",
            "manuscribe_training": "scripts/build_handwriting_model.py, pages.tsv of htr-training",
            **language_model(train_set),
            "manuscribe_settings": json.dumps({"stretch": args.stretch, "freeze": args.freeze,
                                               "trainable_stages": args.trainable_stages,
                                               "lr": args.lr, "lr_decay": args.lr_decay,
                                               "batch_size": args.batch_size, "seed": SEED}),
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


def language_model(train_set: list) -> dict[str, str]:
    """The character LM of the training split's transcriptions, as model metadata entries; its
    order, pruning and decoder weights are char_lm's defaults, chosen on the validation pages
    (docs/models.md). A language with at least LANGUAGE_LM_LINES lines that is not the corpus's
    main one also gets an LM of its own lines (every n-gram kept: there are few), which the
    engine decodes that language's pages with. Empty without a line store (run `prepare`)."""
    from collections import Counter

    from manuscribe.engines.char_lm import METADATA_KEY, CharNgramLM, language_key

    if not train_set:
        print("no training lines in the line store: no language model", flush=True)
        return {}
    entries = {METADATA_KEY: CharNgramLM.build(s.text for s in train_set).to_metadata()}
    languages = Counter(s.language for s in train_set if s.language)
    main = languages.most_common(1)[0][0] if languages else ""
    for language, lines in sorted(languages.items()):
        if language != main and lines >= LANGUAGE_LM_LINES:
            texts = (s.text for s in train_set if s.language == language)
            entries[language_key(language)] = CharNgramLM.build(texts, min_count=1).to_metadata()
            print(f"{language}: a language model of its own {lines} lines", flush=True)
    return entries


def add_language_model(args: argparse.Namespace) -> None:
    """Write `model` again with the language model of the training split (and this build's
    name) in its metadata; the network is untouched."""
    import onnx

    from manuscribe.training.recognizer import onnx_metadata, set_metadata

    train_set, _ = split(LineStore(args.work / "store").samples())
    entry = language_model(train_set)
    if not entry:
        raise SystemExit(f"{args.work / 'store'}: no line store to build the language model from")
    model = onnx.load(str(args.model))
    metadata = onnx_metadata(model)  # a file that has an LM already keeps its network's name
    network = metadata.get("manuscribe_network") or metadata.get("manuscribe_model")
    network = network or args.model.stem
    set_metadata(model, {**entry, "manuscribe_model": MODEL_NAME, "manuscribe_network": network})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(args.out))
    print(f"{args.out}: language model of {len(train_set)} training lines added", flush=True)


def model_metadata(checkpoint: dict, **settings) -> dict[str, str]:
    """What the shipped ONNX file says about itself (read by docs/models.md and rec_models)."""
    state = checkpoint["state"]
    return {
        "manuscribe_model": MODEL_NAME,
        "manuscribe_base": "PP-OCRv6_rec_small (rapidocr; Apache-2.0, PaddlePaddle Authors)",
        "manuscribe_training": "scripts/build_handwriting_model.py, pages.tsv of htr-training",
        "manuscribe_settings": json.dumps({"stretch": checkpoint["stretch"], "freeze": "backbone",
                                           "seed": SEED, **settings}),
        "manuscribe_lines_seen": str(state["lines_seen"]),
        "manuscribe_val_cer": json.dumps(state["history"][-1]["val_cer"] if state["history"]
                                         else {}),
    }  # fmt: skip


def export(args: argparse.Namespace) -> None:
    """A checkpoint -> the ONNX model the package ships."""
    import torch

    from manuscribe.training.recognizer import export_onnx, load_recognizer

    checkpoint = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    recognizer, _ = load_recognizer(None, checkpoint["charset"], checkpoint["stretch"])
    recognizer.load_state_dict(checkpoint["model"])
    train_set, _ = split(LineStore(args.work / "store").samples())
    export_onnx(recognizer, args.out, {**model_metadata(checkpoint), **language_model(train_set)})
    print(f"{args.out}: {checkpoint['state']['lines_seen']} lines seen", flush=True)


def blend(args: argparse.Namespace) -> None:
    """Weight-space ensembling of the fine-tuned model with its base (WiSE-FT, Wortsman et al.
    2022): theta = base + alpha * (fine-tuned - base). It keeps most of the fine-tuning's gain
    while restoring some of the base model's robustness on what the corpus has little of
    (English). Each alpha is scored on the validation pages; the best one is exported."""
    import torch

    from manuscribe.training.recognizer import export_onnx, load_recognizer
    from manuscribe.training.trainer import TrainConfig, Trainer

    checkpoint = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    store = LineStore(args.work / "store")
    train_set, val_set = split(store.samples())
    base, _ = load_recognizer(None, checkpoint["charset"], checkpoint["stretch"])
    start = {k: v.clone() for k, v in base.state_dict().items()}
    tuned = checkpoint["model"]
    results = {}
    for alpha in args.alphas:
        mixed = {k: (v + alpha * (tuned[k] - v)) if v.is_floating_point() else tuned[k]
                 for k, v in start.items()}  # fmt: skip
        base.load_state_dict(mixed)
        config = TrainConfig(out=args.out, threads=args.threads, max_val_lines=args.val_lines)
        trainer = Trainer(base, store, train_set[:1], val_set, config, log=lambda _: None)
        cer = trainer.validate(trainer.val_subset())
        english = [s for s in trainer.val_subset() if s.language == "en"]
        results[alpha] = {"all": cer["all"], "en": trainer.validate(english)["all"]}
        print(f"alpha {alpha}: {json.dumps(results[alpha])}", flush=True)
    best = min(results, key=lambda a: results[a]["all"] + args.english_weight * results[a]["en"])
    mixed = {k: (v + best * (tuned[k] - v)) if v.is_floating_point() else tuned[k]
             for k, v in start.items()}  # fmt: skip
    base.load_state_dict(mixed)
    metadata = model_metadata(checkpoint, wise_ft_alpha=best)
    export_onnx(base, args.out, metadata)
    print(json.dumps({"alpha": best, "results": results, "out": str(args.out)}), flush=True)


def validation_pages(args: argparse.Namespace) -> Path:
    """The held-out pages as an evaluation set (see manuscribe.training.evalset)."""
    from manuscribe.training.evalset import export_eval_page

    target = args.work / "valpages"
    _, val = split(LineStore(args.work / "store").samples())
    rows = {f"{r['repo']}:{r['xml_path']}": r for r in read_pages_tsv(args.pages)}
    for page_id in sorted({s.page for s in val}):
        name = hashlib.sha1(page_id.encode()).hexdigest()[:12]
        if (target / f"{name}.json").is_file():
            continue
        row = rows[page_id]
        base = args.work / "pages" / row["repo"].replace("/", "+")
        page = read_page(base / row["xml_path"], base / row["image_path"])
        if not page.error:
            export_eval_page(page, target, name, source=page_id, collection=row["repo"],
                             language=row["language"])  # fmt: skip
    return target


def evaluate(args: argparse.Namespace) -> None:
    """Line-aligned CER of recognisers on the held-out pages, per collection (eval's scoring)."""
    from manuscribe.training.evalset import score_folder

    folder = validation_pages(args)
    results = {model: score_folder(folder, model) for model in args.models}
    if args.greedy_too:  # the same models with their language model unused (rapidocr's has none)
        for model in (m for m in args.models if m != "ppocr"):
            results[f"{model} --no-ocr-lm"] = score_folder(folder, model, language_model=False)
    print(json.dumps({"benchmark": "validation_pages", "results": results}, ensure_ascii=False))


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
    stages = "with --freeze backbone: the backbone's last N stages train too (0-2)"
    t.add_argument("--trainable-stages", type=int, default=0, help=stages)
    decay = "cosine: from --lr to lr/20 over this run's --max-minutes"
    t.add_argument("--lr-decay", choices=["none", "cosine"], default="none", help=decay)
    t.add_argument("--stretch", type=float, default=1.5)
    t.add_argument("--eval-every", type=int, default=3000)
    t.add_argument("--english-boost", type=float, default=3.0)
    t.add_argument("--device", default="auto")
    t.add_argument("--threads", type=int, default=0)
    t.add_argument("--resume", action="store_true")
    based = "start from this model (one of ours, e.g. the shipped one) instead of rapidocr's"
    t.add_argument("--base", type=Path, default=None, help=based)
    x = sub.add_parser("export")
    x.add_argument("checkpoint", type=Path)
    x.add_argument("--out", type=Path, default=MODELS / f"{MODEL_NAME}.onnx")
    x.add_argument("--work", type=Path, default=WORK)
    b = sub.add_parser("blend")
    b.add_argument("checkpoint", type=Path)
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--alphas", type=float, nargs="+", default=[1.0, 0.8, 0.6])
    b.add_argument("--english-weight", type=float, default=1.0)
    b.add_argument("--val-lines", type=int, default=600)
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--work", type=Path, default=WORK)
    m = sub.add_parser("lm", help="add the training split's character language model to a model")
    m.add_argument("model", type=Path)
    m.add_argument("--out", type=Path, default=MODELS / f"{MODEL_NAME}.onnx")
    m.add_argument("--work", type=Path, default=WORK)
    e = sub.add_parser("evaluate")
    e.add_argument("models", nargs="+", help="ocr_model values: default, ppocr or paths")
    e.add_argument("--pages", type=Path, default=PAGES_TSV)
    e.add_argument("--work", type=Path, default=WORK)
    e.add_argument("--greedy-too", action="store_true", help="also read each without its LM")
    args = parser.parse_args()
    if args.command == "evaluate":
        evaluate(args)
    elif args.command == "export":
        export(args)
    elif args.command == "lm":
        add_language_model(args)
    elif args.command == "blend":
        blend(args)
    elif args.command == "prepare":
        prepare(args)
    elif args.command == "train":
        train(args)


if __name__ == "__main__":
    main()
