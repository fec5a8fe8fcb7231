"""Correction benchmark (placeholder while written)."""

from __future__ import annotations

import json
import time
from pathlib import Path

LINES_PER_BLOCK = 4


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
        started = time.perf_counter()
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
                    for box, text, score in zip(result.boxes, result.txts, result.scores):
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
        print(page["id"], f"{time.perf_counter() - started:.1f}s", flush=True)
    cache.write_text(json.dumps(blocks, ensure_ascii=False, indent=1))
    return blocks
