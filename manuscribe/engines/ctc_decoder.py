"""CTC prefix beam search with a character language model, in place of greedy decoding.

Greedy decoding takes the likeliest character of each output frame. On handwriting the
recogniser is often torn between two or three readings of a letter; the beam keeps the few best
readings of the line so far and lets the language model (engines/char_lm.py) choose between
them. This is the prefix beam search of Hannun et al. (2014): a prefix's probability is kept
split into "ends in blank" and "ends in a character", so that repeated letters ("ll") and one
long letter are told apart exactly as CTC defines them.

`LmCtcDecode` has the call signature of rapidocr's `CTCLabelDecode`, so it replaces the
recogniser's postprocessing as it is: every line rapidocr reads, and every crop another engine
hands it, goes through it. The confidence stays the greedy one (the mean of each character's
best probability), so `text_score` and the second opinion compare the same number as before.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from manuscribe.engines.char_lm import CharNgramLM, DecoderWeights

NEG_INF = float("-inf")
TINY = 1e-150  # below this the beams' probabilities are scaled up (they only compare)


def _ranking(prefix: str, entry: list, bonus: float) -> float:
    total = entry[0] + entry[1]
    return (math.log(total) if total > 0.0 else NEG_INF) + entry[2] + bonus * len(prefix)


def beam_search(probs: np.ndarray, characters: list[str], lm: CharNgramLM | None) -> str:
    """The best reading of one line. `probs` is (frames, classes) of per-frame probabilities,
    class 0 the CTC blank and class i the string `characters[i]`.

    The CTC sums stay probabilities (not logs: fewer Python calls per step), scaled up whenever
    the best falls under TINY; only their ratios matter."""
    # without a language model: the same search, CTC alone, no length bonus
    weights = lm.weights if lm is not None else DecoderWeights(weight=0.0, length_bonus=0.0)
    alpha, bonus, width, prune = weights.weight, weights.length_bonus, weights.beam, weights.prune
    # per frame, only the blank's probability and the (class, probability) pairs worth trying
    blanks = probs[:, 0].astype(np.float64).tolist()
    frames, classes = np.nonzero(probs[:, 1:] >= prune)
    classes += 1
    values = probs[frames, classes].astype(np.float64).tolist()
    candidates: list[list[tuple[int, float]]] = [[] for _ in blanks]
    for frame, index, p in zip(frames.tolist(), classes.tolist(), values, strict=True):
        candidates[frame].append((index, p))
    # each beam: prefix -> [P(ends in blank), P(ends in a character), weighted ln P_lm, last class]
    beams: dict[str, list] = {"": [1.0, 0.0, 0.0, -1]}
    for blank, tried in zip(blanks, candidates, strict=True):
        following: dict[str, list] = {}
        for prefix, (p_blank, p_char, lm_score, last) in beams.items():
            total = p_blank + p_char
            same = following.get(prefix)
            if same is None:
                same = following[prefix] = [0.0, 0.0, lm_score, last]
            same[0] += total * blank
            for index, p in tried:
                if index == last:  # the same letter goes on, or (after a blank) comes again
                    same[1] += p_char * p
                    source = p_blank * p
                else:
                    source = total * p
                if source == 0.0:
                    continue
                char = characters[index]
                longer = prefix + char
                entry = following.get(longer)
                if entry is None:
                    step = alpha * lm.logprob(prefix, char) if alpha else 0.0
                    entry = following[longer] = [0.0, 0.0, lm_score + step, index]
                entry[1] += source
        if len(following) > width:  # `_ranking`, inlined: this runs for every prefix and frame
            score = {
                k: (math.log(e[0] + e[1]) if e[0] + e[1] > 0.0 else NEG_INF) + e[2] + bonus * len(k)
                for k, e in following.items()
            }
            ranked = sorted(score, key=score.__getitem__, reverse=True)
            following = {k: following[k] for k in ranked[:width]}
        top = max(e[0] + e[1] for e in following.values())
        if 0.0 < top < TINY:
            for entry in following.values():
                entry[0] /= top
                entry[1] /= top
        beams = following

    def final(prefix: str) -> float:
        end = alpha * lm.end_logprob(prefix) if alpha else 0.0
        return _ranking(prefix, beams[prefix], bonus) + end

    return max(beams, key=final)


class LmCtcDecode:
    """Drop-in for rapidocr's CTCLabelDecode (`__call__(preds, return_word_box, **kwargs)`)."""

    def __init__(self, greedy, lm: CharNgramLM):
        self.greedy = greedy  # rapidocr's own decoder: confidences, and word boxes if asked
        self.character = greedy.character
        self.default_lm = lm
        # what one call of the engine switches (another language's LM, recording) is per thread:
        # an engine shared by a thread pool must not decode one page with another page's LM
        self._state = threading.local()

    @property
    def lm(self) -> CharNgramLM:
        return getattr(self._state, "lm", None) or self.default_lm

    @lm.setter
    def lm(self, model: CharNgramLM | None) -> None:
        self._state.lm = model

    @property
    def recording(self) -> list | None:
        """A list while the engine wants each line's (text, confidence, frame probabilities)
        kept, to decode the lines again with another language model without running the
        network; None otherwise."""
        return getattr(self._state, "recording", None)

    @recording.setter
    def recording(self, kept: list | None) -> None:
        self._state.recording = kept

    def __call__(self, preds: np.ndarray, return_word_box: bool = False, **kwargs):
        lines, words = self.greedy(preds, return_word_box, **kwargs)
        if return_word_box:  # word boxes follow the greedy path's frames: keep them coherent
            return lines, words
        ratios = kwargs.get("wh_ratio_list") or [1.0] * len(preds)
        widest = kwargs.get("max_wh_ratio") or 1.0
        texts = []
        for row, ratio, (_, score) in zip(preds, ratios, lines, strict=True):
            # a batch is padded to its widest line: the frames past this line's end are padding
            frames = min(len(row), math.ceil(len(row) * ratio / widest) + 2)
            text = beam_search(row[:frames], self.character, self.lm)
            texts.append((text, score))
            if self.recording is not None:
                self.recording.append((text, score, row[:frames]))
        return texts, words
