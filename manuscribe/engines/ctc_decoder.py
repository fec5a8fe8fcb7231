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

import numpy as np

from manuscribe.engines.char_lm import CharNgramLM, DecoderWeights

NEG_INF = float("-inf")


def _log_add(a: float, b: float) -> float:
    if a < b:
        a, b = b, a
    if b == NEG_INF:
        return a
    return a + math.log1p(math.exp(b - a))


def _ranking(item: tuple[str, list], bonus: float) -> float:
    prefix, (p_blank, p_char, lm_score, _) = item
    return _log_add(p_blank, p_char) + lm_score + bonus * len(prefix)


def beam_search(probs: np.ndarray, characters: list[str], lm: CharNgramLM | None) -> str:
    """The best reading of one line. `probs` is (frames, classes) of per-frame probabilities,
    class 0 the CTC blank and class i the string `characters[i]`."""
    # without a language model: the same search, CTC alone, no length bonus
    weights = lm.weights if lm is not None else DecoderWeights(weight=0.0, length_bonus=0.0)
    alpha, bonus, width, prune = weights.weight, weights.length_bonus, weights.beam, weights.prune
    with np.errstate(divide="ignore"):
        logs = np.log(probs.astype(np.float64))
    # each beam: prefix -> [ln P(ends in blank), ln P(ends in a character), ln P_lm, last class]
    beams: dict[str, list] = {"": [0.0, NEG_INF, 0.0, -1]}
    candidates = [np.flatnonzero(row >= prune) for row in probs[:, 1:]]
    for t in range(len(probs)):
        blank = logs[t, 0]
        tried = [(int(i) + 1, float(logs[t, i + 1])) for i in candidates[t]]
        following: dict[str, list] = {}
        for prefix, (p_blank, p_char, lm_score, last) in beams.items():
            total = _log_add(p_blank, p_char)
            same = following.get(prefix)
            if same is None:
                same = following[prefix] = [NEG_INF, NEG_INF, lm_score, last]
            same[0] = _log_add(same[0], total + blank)
            for index, log_p in tried:
                if index == last:  # the same letter goes on, or (after a blank) comes again
                    same[1] = _log_add(same[1], p_char + log_p)
                    source = p_blank + log_p
                else:
                    source = total + log_p
                if source == NEG_INF:
                    continue
                longer = prefix + characters[index]
                entry = following.get(longer)
                if entry is None:
                    step = alpha * lm.logprob(prefix, characters[index]) if alpha else 0.0
                    entry = following[longer] = [NEG_INF, NEG_INF, lm_score + step, index]
                entry[1] = _log_add(entry[1], source)
        if len(following) > width:
            ranked = sorted(following.items(), key=lambda item: _ranking(item, bonus), reverse=True)
            following = dict(ranked[:width])
        beams = following

    def final(item: tuple[str, list]) -> float:
        prefix, (p_blank, p_char, lm_score, _) = item
        end = alpha * lm.end_logprob(prefix) if alpha else 0.0
        return _log_add(p_blank, p_char) + lm_score + end + bonus * len(prefix)

    return max(beams.items(), key=final)[0]


class LmCtcDecode:
    """Drop-in for rapidocr's CTCLabelDecode (`__call__(preds, return_word_box, **kwargs)`)."""

    def __init__(self, greedy, lm: CharNgramLM):
        self.greedy = greedy  # rapidocr's own decoder: confidences, and word boxes if asked
        self.character = greedy.character
        self.lm = lm

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
            texts.append((beam_search(row[:frames], self.character, self.lm), score))
        return texts, words
