"""Ground truth for the report (`manuscribe eval --html`): per-line CER and GT boxes on the page.

Lines are matched the way `manuscribe eval` matches them (`evaluation.assign_lines`), so the
CER a line is coloured by is the one the evaluation counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from manuscribe.evaluation import align_lines, assign_lines, char_errors, normalise, predicted_lines
from manuscribe.model import Document, Page
from manuscribe.truth_files import TruthFolder


@dataclass
class TruthLine:
    bbox: tuple[int, int, int, int]  # in page pixels (scaled from the GT image)
    reference: str  # normalised as for scoring
    prediction: str
    cer: float


@dataclass
class PageTruth:
    lines: list[TruthLine]
    cer: float  # line-aligned CER of the page
    pred_cer: dict[str, float] = field(default_factory=dict)  # view line id -> its GT line's CER


def page_truth(page: Page, gt: dict) -> PageTruth:
    """Score the page's main text (corrected where applied) against one GT page."""
    scale = gt["width"] / page.width if page.width else 1.0
    pred = predicted_lines(page, corrected=True)
    aligned = align_lines(gt["lines"], pred, scale)
    lines, errors_total, chars_total = [], 0, 0
    for line, text in zip(gt["lines"], aligned, strict=True):
        reference, prediction = normalise(line["text"]), normalise(text)
        errors, length = char_errors(reference, prediction)
        errors_total, chars_total = errors_total + errors, chars_total + length
        box = tuple(int(round(v / scale)) for v in line["bbox"])
        lines.append(TruthLine(box, reference, prediction, errors / max(1, length)))  # type: ignore[arg-type]
    truth = PageTruth(lines, errors_total / max(1, chars_total))
    for n, best in enumerate(assign_lines(gt["lines"], pred, scale)):
        if best is not None:
            truth.pred_cer[f"L{n + 1}"] = lines[best].cer
    return truth


def document_truth(document: Document, json_path: Path, truth: TruthFolder) -> dict[int, PageTruth]:
    """Truth per page number: the ground truth of the same name scores the first recognised
    page, as in `evaluation.evaluate_folder` (the dataset has one page per file)."""
    page = next((p for p in document.pages if not p.error), None)
    gt = truth.page(document.name or json_path.stem) if page is not None else None
    if gt is None:
        return {}
    return {page.number: page_truth(page, gt)}
