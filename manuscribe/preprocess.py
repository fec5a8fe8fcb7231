"""Optional OpenCV clean-up for poor scans: deskew, denoise, contrast.

The pipeline applies it when a page reads badly (low mean confidence) and keeps the result only if
the engine then reads the page with more confidence, so it never makes a good page worse.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

MAX_SKEW_DEGREES = 5.0


def estimate_skew(gray: np.ndarray) -> float:
    """Skew angle in degrees by projection profiles: text rows are sharpest when level."""
    scale = 800 / max(gray.shape)
    small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ink = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)[1]
    centre = (ink.shape[1] / 2, ink.shape[0] / 2)
    best_angle, best_score = 0.0, -1.0
    for angle in np.arange(-MAX_SKEW_DEGREES, MAX_SKEW_DEGREES + 0.01, 0.5):
        matrix = cv2.getRotationMatrix2D(centre, float(angle), 1.0)
        rotated = cv2.warpAffine(ink, matrix, (ink.shape[1], ink.shape[0]))
        score = float(np.var(rotated.sum(axis=1, dtype=np.float64)))
        if score > best_score:
            best_angle, best_score = float(angle), score
    return best_angle


def rotate(gray: np.ndarray, angle: float) -> np.ndarray:
    centre = (gray.shape[1] / 2, gray.shape[0] / 2)
    matrix = cv2.getRotationMatrix2D(centre, angle, 1.0)
    return cv2.warpAffine(
        gray, matrix, (gray.shape[1], gray.shape[0]), borderMode=cv2.BORDER_REPLICATE
    )


def preprocess(image: Image.Image) -> tuple[Image.Image, list[str]]:
    """A cleaned copy of `image` and the steps applied, e.g. ["deskew:-1.5", "denoise", ...]."""
    gray = cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2GRAY)
    steps: list[str] = []
    angle = estimate_skew(gray)
    if abs(angle) >= 0.5:
        gray = rotate(gray, angle)
        steps.append(f"deskew:{angle:+.1f}")
    gray = cv2.medianBlur(gray, 3)
    steps.append("denoise")
    gray = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(gray)
    steps.append("contrast")
    return Image.fromarray(cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)), steps
