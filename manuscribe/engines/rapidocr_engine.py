"""rapidocr: PP-OCR line detection + line recognition on onnxruntime.

Detection uses the model rapidocr ships, with its settings made for handwriting (the
`ocr_det_*` settings: the stock ones drop faint lines and make boxes too tall). Recognition uses
manuscribe's handwriting recogniser by default (a PP-OCR recogniser fine-tuned on open handwritten
ground truth, see docs/models.md), or any recogniser named by the `ocr_model` setting
(engines/rec_models.py). When the recogniser carries a character language model, lines are
decoded by beam search with it (engines/ctc_decoder.py) instead of greedily. It returns lines
(quadrilateral, text, score); the pipeline groups them into blocks. The 180-degree line
classifier is off: on cursive it flipped good lines and garbled them.
"""

from __future__ import annotations

import logging
from importlib.metadata import version

import numpy as np
from PIL import Image

from manuscribe.engines import rec_models
from manuscribe.engines.base import EngineError, Hints, PageResult
from manuscribe.engines.rec_models import RecModel
from manuscribe.model import Line


class RapidOcrEngine:
    name = "rapidocr"

    def __init__(
        self,
        threads: int = 1,
        text_score: float = 0.5,
        rec_model: RecModel | None = None,
        second_opinion: bool = False,
        language_model: bool = True,
        detector: dict | None = None,
    ):
        try:
            from rapidocr import RapidOCR
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise EngineError(f"rapidocr is not installed ({exc}); pip install rapidocr") from exc
        self.version = version("rapidocr")
        self.threads = threads
        self.text_score = text_score
        self.rec_model = rec_model
        # DB detector parameters (box_thresh, unclip_ratio); None = rapidocr's own
        self.detector = dict(detector or {})
        self.second_opinion = second_opinion and rec_model is not None and rec_model.path
        params = {
            "Global.use_cls": False,
            # with a second opinion, low scores are dropped after both readings are compared
            "Global.text_score": 0.0 if self.second_opinion else text_score,
            "Global.log_level": "warning",
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            **{f"Det.{key}": value for key, value in self.detector.items()},
        }
        if rec_model is not None and rec_model.path is not None:
            params["Rec.model_path"] = str(rec_model.path)
        try:
            self._ocr = RapidOCR(params=params)
            self._second = None
            if self.second_opinion:  # rapidocr's own recogniser, for printed and typed lines
                second = {k: v for k, v in params.items() if k != "Rec.model_path"}
                self._second = RapidOCR(params=second)
            recognizer = self._ocr._load_rec_model()  # loaded now: a broken file fails here
        except Exception as exc:  # a broken model file fails here, before any page
            raise EngineError(f"rapidocr could not load its models ({exc})") from exc
        self.language_model = None
        if language_model and rec_model is not None:
            self.language_model = rec_models.language_model(rec_model)
        if self.language_model is not None:
            from manuscribe.engines.ctc_decoder import LmCtcDecode

            recognizer.postprocess_op = LmCtcDecode(recognizer.postprocess_op, self.language_model)
        logging.getLogger("RapidOCR").setLevel(logging.WARNING)

    def settings(self) -> dict:
        # threads change speed, not output, so they stay out of the fingerprint
        model = self.rec_model
        rec = {"name": model.name, "sha256": model.sha256} if model else {"name": "PP-OCRv6 small"}
        return {
            "text_score": self.text_score,
            "use_cls": False,
            "det": {"name": "PP-OCRv6 small", **self.detector}
            if self.detector
            else "PP-OCRv6 small",
            "rec": rec,
            "second_opinion": "PP-OCRv6 small" if self.second_opinion else None,
            # the LM itself is in the model file (its sha256); this says whether it is used
            "decoder": "beam+charlm" if self.language_model is not None else "greedy",
        }

    def recognize(self, image: Image.Image, hints: Hints) -> PageResult:
        result = self._ocr(image)
        lines: list[Line] = []
        if result.boxes is None:
            return PageResult(lines=lines)
        readings = list(zip(result.txts, result.scores, strict=True))
        if self._second is not None:
            readings = self._more_confident(image, result.boxes, readings)
        for box, (text, score) in zip(result.boxes, readings, strict=True):
            if score < self.text_score:
                continue
            text = " ".join(str(text).split())
            if not text:
                continue
            quad = np.asarray(box)
            x0, y0 = np.floor(quad.min(axis=0)).astype(int)
            x1, y1 = np.ceil(quad.max(axis=0)).astype(int)
            bbox = (
                max(0, int(x0)),
                max(0, int(y0)),
                min(image.width, int(x1)),
                min(image.height, int(y1)),
            )
            lines.append(Line(bbox=bbox, text=text, confidence=round(float(score), 4)))
        return PageResult(lines=lines)

    def _more_confident(self, image: Image.Image, boxes, readings: list) -> list:
        """Each line read again by rapidocr's own recogniser; the more confident reading wins.
        The handwriting model is sure of cursive, the printed-text model of letterheads, stamps
        and typed lines, which archives mix with handwriting."""
        import copy

        from rapidocr.utils.load_image import LoadImage
        from rapidocr.utils.process_img import get_rotate_crop_image

        pixels = LoadImage()(image)
        crops = [get_rotate_crop_image(pixels, copy.deepcopy(np.asarray(b))) for b in boxes]
        other = self._second.recognize_txt(crops)
        return [
            (text2, score2) if score2 > score else (text, score)
            for (text, score), text2, score2 in zip(readings, other.txts, other.scores, strict=True)
        ]

    def read_crops(self, crops: list[Image.Image]) -> list[tuple[str, float]]:
        """(text, confidence) for line images another engine cut out (kraken's dewarped lines),
        with the same recogniser and second opinion as rapidocr's own lines."""
        from rapidocr.utils.load_image import LoadImage

        if not crops:
            return []
        load = LoadImage()
        pixels = [load(crop.convert("RGB")) for crop in crops]
        first = self._ocr.recognize_txt(pixels)
        readings = list(zip(first.txts, first.scores, strict=True))
        if self._second is not None:
            other = self._second.recognize_txt(pixels)
            readings = [
                (text2, score2) if score2 > score else (text, score)
                for (text, score), text2, score2 in zip(
                    readings, other.txts, other.scores, strict=True
                )
            ]
        return [(" ".join(str(t).split()), round(float(c), 4)) for t, c in readings]

    def close(self) -> None:
        self._ocr = None
