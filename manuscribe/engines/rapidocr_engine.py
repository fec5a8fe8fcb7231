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
from contextlib import contextmanager
from importlib.metadata import version

import numpy as np
from PIL import Image

from manuscribe.engines import rec_models
from manuscribe.engines.base import EngineError, Hints, PageResult
from manuscribe.engines.ctc_decoder import beam_search
from manuscribe.engines.rec_models import RecModel
from manuscribe.language import UNSURE, identify
from manuscribe.model import Line

# the printed-text model is a Chinese one: its punctuation on Latin lines is often full-width
_FULL_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}
_FULL_WIDTH.update({0x3000: " ", 0x3001: ",", 0x3002: "."})


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
        second_opinion_margin: float = 0.1,
        languages: list[str] | None = None,
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
        self.second_opinion_margin = second_opinion_margin
        # the candidates when a page's language is told from its text (settings.languages)
        self.languages = list(languages or ["fr", "en", "de", "es", "it", "nl", "pt", "la"])
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
        # what the handwriting model can write: a second-opinion reading with anything else in it
        # (the printed-text model's CJK characters for a speck or a punch hole) is not taken
        self._charset = frozenset(recognizer.postprocess_op.character)
        self.language_model = None
        self.language_models: dict = {}  # ISO 639-1 -> that language's own LM
        self._decoder = None
        if language_model and rec_model is not None:
            self.language_model = rec_models.language_model(rec_model)
        if self.language_model is not None:
            from manuscribe.engines.ctc_decoder import LmCtcDecode

            self._decoder = LmCtcDecode(recognizer.postprocess_op, self.language_model)
            recognizer.postprocess_op = self._decoder
            self.language_models = rec_models.language_models(rec_model)
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
            "second_opinion_margin": self.second_opinion_margin if self.second_opinion else None,
            "second_opinion_charset": "recogniser's" if self.second_opinion else None,
            "language_models": sorted(self.language_models),
            "languages": self.languages if self.language_models else None,
            # the LM itself is in the model file (its sha256); this says whether it is used
            "decoder": "beam+charlm" if self.language_model is not None else "greedy",
        }

    def recognize(self, image: Image.Image, hints: Hints) -> PageResult:
        hinted = self.language_models.get(hints.language or "")
        auto = bool(self.language_models) and not hints.language
        with self._decoding_with(hinted), self._recording(auto) as recorded:
            result = self._ocr(image)
        lines: list[Line] = []
        if result.boxes is None:
            return PageResult(lines=lines)
        readings = list(zip(result.txts, result.scores, strict=True))
        if self._second is not None or auto:
            crops = self._crops(image, result.boxes)
            readings = self._settle(crops, readings, hints.language, recorded)
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

    def read_crops(
        self, crops: list[Image.Image], language: str | None = None
    ) -> list[tuple[str, float]]:
        """(text, confidence) for line images another engine cut out (kraken's dewarped lines),
        with the same recogniser, language models and second opinion as rapidocr's own lines."""
        from rapidocr.utils.load_image import LoadImage

        if not crops:
            return []
        load = LoadImage()
        pixels = [load(crop.convert("RGB")) for crop in crops]
        auto = bool(self.language_models) and not language
        hinted = self.language_models.get(language or "")
        with self._decoding_with(hinted), self._recording(auto) as recorded:
            first = self._ocr.recognize_txt(pixels)
        readings = list(zip(first.txts, first.scores, strict=True))
        readings = self._settle(pixels, readings, language, recorded)
        return [(" ".join(str(t).split()), round(float(c), 4)) for t, c in readings]

    @staticmethod
    def _crops(image: Image.Image, boxes) -> list[np.ndarray]:
        import copy

        from rapidocr.utils.load_image import LoadImage
        from rapidocr.utils.process_img import get_rotate_crop_image

        pixels = LoadImage()(image)
        return [get_rotate_crop_image(pixels, copy.deepcopy(np.asarray(b))) for b in boxes]

    def _settle(self, crops: list, readings: list, language: str | None, recorded=None) -> list:
        """The page's lines read again where that reads better.

        A page in a language the recogniser carries a language model of its own for is decoded
        again with it; unless a language was given, it is told from both readings of the page
        (the handwriting model's alone leans French: its main LM is). Then each line's second
        opinion (rapidocr's printed-text recogniser: letterheads, stamps, typed lines) wins
        where it is more confident by `second_opinion_margin`: the LM-decoded reading is better
        than its greedy confidence says, so an even comparison let the printed model win on
        too many handwritten lines (docs/models.md, v6)."""
        margin = self.second_opinion_margin
        others = []
        if self._second is not None:
            other = self._second.recognize_txt(crops)
            others = [self._printed(t, c) for t, c in zip(other.txts, other.scores, strict=True)]
        # the lines whose handwriting reading is kept (its greedy confidence decides that)
        kept = [i for i, (_, score) in enumerate(readings)
                if not others or others[i][1] <= score + margin]  # fmt: skip
        if self.language_models and not language and kept:
            text = "\n".join(str(t) for t, _ in readings + others)
            found, probability = identify(text, self.languages)
            model = self.language_models.get(found) if probability >= UNSURE else None
            if model is not None:  # only the kept lines are decoded again
                texts = self._replayed(recorded, [readings[i] for i in kept], model)
                if texts is None:  # frames not recorded: the network reads those lines again
                    with self._decoding_with(model):
                        texts = self._ocr.recognize_txt([crops[i] for i in kept]).txts
                readings = list(readings)  # each keeps the first pass's (greedy) confidence
                for i, text in zip(kept, texts, strict=True):
                    readings[i] = (text, readings[i][1])
        if not others:
            return readings
        return [
            (text2, score2) if score2 > score + margin else (text, score)
            for (text, score), (text2, score2) in zip(readings, others, strict=True)
        ]

    def _printed(self, text: str, score: float) -> tuple[str, float]:
        """A printed-text reading in the handwriting model's characters: full-width forms and
        CJK punctuation mapped to ASCII; with any other character it cannot win (score -1)."""
        text = str(text).translate(_FULL_WIDTH)
        if any(char not in self._charset for char in text if not char.isspace()):
            return text, -1.0
        return text, score

    def _replayed(self, recorded: list | None, wanted: list, model) -> list[str] | None:
        """`wanted` lines decoded with `model` from the frame probabilities the first pass
        recorded, found by the (text, confidence) the decoder gave them (rapidocr batches the
        lines in its own order); None if any is missing."""
        if not recorded:
            return None
        frames: dict[tuple, list] = {}
        for text, score, probs in recorded:
            frames.setdefault((text, float(score)), []).append(probs)
        chosen = []
        for text, score in wanted:
            found = frames.get((text, float(score)))
            if not found:
                return None
            chosen.append(found.pop(0))
        return [beam_search(probs, self._decoder.character, model) for probs in chosen]

    @contextmanager
    def _recording(self, wanted: bool):
        """The decoder keeps each line's frame probabilities within this block, if `wanted`."""
        if not wanted or self._decoder is None:
            yield None
            return
        self._decoder.recording = recorded = []
        try:
            yield recorded
        finally:
            self._decoder.recording = None

    @contextmanager
    def _decoding_with(self, model):
        """Lines decoded with `model` instead of the main language model, for this block."""
        if model is None or self._decoder is None:
            yield
            return
        self._decoder.lm = model
        try:
            yield
        finally:
            self._decoder.lm = None  # back to the main language model

    def close(self) -> None:
        self._ocr = None
