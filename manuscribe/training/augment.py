"""Cheap line-image augmentation: what differs between a transcriber's polygon and a detector's box,
and between one scan and another (crop margins, slant of the box, width, ink and paper contrast)."""

from __future__ import annotations

import random

import cv2
import numpy as np


def augment_line(img: np.ndarray, rng: random.Random) -> np.ndarray:
    """A randomly varied copy of a grey line crop, returned at the same height."""
    height = img.shape[0]
    out = img
    if rng.random() < 0.5:  # tighter or looser vertical margins
        cut_top = int(rng.uniform(-0.12, 0.12) * height)
        cut_bottom = int(rng.uniform(-0.12, 0.12) * height)
        out = _vertical_margins(out, cut_top, cut_bottom)
    if rng.random() < 0.5:  # wider or narrower writing
        scale = rng.uniform(0.8, 1.2)
        out = cv2.resize(out, (max(8, round(out.shape[1] * scale)), out.shape[0]))
    if rng.random() < 0.3:  # a little shear, as a slanted box crop gives
        shear = rng.uniform(-0.25, 0.25)
        pad = int(abs(shear) * out.shape[0])
        matrix = np.float32([[1, shear, pad if shear < 0 else 0], [0, 1, 0]])
        border = int(np.median(out))
        out = cv2.warpAffine(out, matrix, (out.shape[1] + pad, out.shape[0]),
                             borderMode=cv2.BORDER_CONSTANT, borderValue=border)  # fmt: skip
    if rng.random() < 0.2:
        out = cv2.GaussianBlur(out, (3, 3), rng.uniform(0.3, 1.0))
    if rng.random() < 0.5:  # contrast and brightness
        alpha, beta = rng.uniform(0.6, 1.3), rng.uniform(-40, 40)
        out = np.clip(out.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)
    if out.shape[0] != height:
        width = max(8, round(out.shape[1] * height / out.shape[0]))
        out = cv2.resize(out, (width, height))
    return out


def _vertical_margins(img: np.ndarray, cut_top: int, cut_bottom: int) -> np.ndarray:
    """Positive cuts remove rows, negative ones add rows of the paper's colour."""
    paper = int(np.percentile(img, 90))
    if cut_top < 0:
        img = np.vstack([np.full((-cut_top, img.shape[1]), paper, np.uint8), img])
    elif cut_top > 0:
        img = img[cut_top:]
    if cut_bottom < 0:
        img = np.vstack([img, np.full((-cut_bottom, img.shape[1]), paper, np.uint8)])
    elif cut_bottom > 0:
        img = img[:-cut_bottom]
    return img
