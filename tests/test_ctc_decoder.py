"""The character language model and the CTC beam search that reads lines with it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from manuscribe.engines.char_lm import EOS, CharNgramLM, DecoderWeights, count_ngrams
from manuscribe.engines.ctc_decoder import LmCtcDecode, beam_search

CHARACTERS = ["blank", "c", "a", "t", "o", "s", "h", "e", "n", "i", "d", " "]


def frames(*rows: dict[str, float]) -> np.ndarray:
    """Per-frame probabilities from {character: p} (the rest of each frame goes to blank)."""
    probs = np.zeros((len(rows), len(CHARACTERS)), dtype=np.float32)
    for t, row in enumerate(rows):
        for char, p in row.items():
            probs[t, CHARACTERS.index(char)] = p
        probs[t, 0] = 1.0 - probs[t, 1:].sum()
    return probs


def spell(text: str) -> list[dict[str, float]]:
    """A confident reading of `text`: each character, then a blank."""
    rows = []
    for char in text:
        rows += [{char: 0.98}, {}]
    return rows


CORPUS = ["the cat sat", "a cat", "cats", "the cat is a cat", "cat and cats"] * 5


def test_the_model_is_a_distribution_over_its_vocabulary_and_prefers_its_corpus():
    lm = CharNgramLM.build(CORPUS, order=4, min_count=1)
    vocabulary = {g for g in lm.counts if len(g) == 1}
    for context in ("", "the c", "xyz", "ca"):
        mass = sum(math.exp(lm.logprob(context, c)) for c in vocabulary)
        unseen = math.exp(lm.logprob(context, "\u2603"))  # one share for anything unseen
        assert mass + unseen == pytest.approx(1.0, abs=1e-9)
    assert lm.score("a cat") > lm.score("a cot") > lm.score("x qzv")
    assert lm.logprob("a ca", "t") > lm.logprob("a ca", "o")
    assert lm.end_logprob("the cat") > lm.end_logprob("the ca")  # lines end after words


def test_counts_pad_each_line_and_pruning_keeps_the_short_ngrams():
    counts = count_ngrams(["ab", "  ab  "], order=3)
    assert counts["a"] == 2 and counts["\x02a"] == 2 and counts["ab" + EOS] == 2
    assert counts[" "] == 0  # whitespace is collapsed and trimmed, as the recogniser's output
    pruned = CharNgramLM.build(["abc", "abd"], order=3, min_count=2)
    assert "ab" in pruned.counts and "c" in pruned.counts and "abc" not in pruned.counts


def test_the_model_travels_as_metadata_and_bad_metadata_is_refused():
    weights = DecoderWeights(weight=0.7, length_bonus=1.5, beam=4)
    lm = CharNgramLM.build(CORPUS, order=5, weights=weights)
    again = CharNgramLM.from_metadata(lm.to_metadata())
    assert again.counts == lm.counts and again.order == 5 and again.weights == weights
    assert again.score("the cat") == lm.score("the cat")
    with pytest.raises(ValueError, match="not a character language model"):
        CharNgramLM.from_metadata("bm90IHpsaWI=")


def test_merging_adds_a_collections_counts():
    base = CharNgramLM.build(["the cat"], order=3, min_count=1)
    own = CharNgramLM.build(["the cot", "cot"], order=3, min_count=1)
    merged = base.merged(own)
    assert merged.counts["t"] == base.counts["t"] + own.counts["t"]
    assert merged.counts["cot"] == 2 and merged.order == 3
    assert merged.logprob("c", "o") > base.logprob("c", "o")


def test_without_a_model_the_beam_agrees_with_greedy_on_confident_frames():
    probs = frames(*spell("cats"), {"s": 0.9}, {}, *spell(" a"))  # "ss" only with a blank
    assert beam_search(probs, CHARACTERS, None) == "catss a"
    held = frames({"t": 0.9}, {"t": 0.9}, {"t": 0.9})  # one long letter
    assert beam_search(held, CHARACTERS, None) == "t"


def test_a_long_uncertain_line_does_not_underflow():
    # 1,196 characters, each followed by a frame where the blank has only 0.45: the best path's
    # probability is about 1e-425, far below what a float holds, so the beam must rescale
    text = "cat is a cat " * 92
    rows = []
    for char in text:
        rows += [{char: 0.98}, {"o": 0.3, "s": 0.25}]
    probs = frames(*rows)
    assert beam_search(probs, CHARACTERS, None) == text
    lm = CharNgramLM.build(CORPUS, order=4, min_count=1)
    assert beam_search(probs, CHARACTERS, lm).startswith("cat is a cat")


def test_the_beam_sums_the_paths_greedy_decoding_splits():
    # each frame: blank 0.4, a 0.35, c 0.25; greedy says "" (0.16), but "a" has 0.4025
    probs = frames({"a": 0.35, "c": 0.25}, {"a": 0.35, "c": 0.25})
    assert beam_search(probs, CHARACTERS, None) == "a"


def test_the_language_model_settles_a_letter_the_recogniser_is_torn_over():
    torn = frames(*spell("the c"), {"o": 0.5, "a": 0.46}, {}, *spell("t"))
    assert beam_search(torn, CHARACTERS, None) == "the cot"
    lm = CharNgramLM.build(CORPUS, order=5, min_count=1)
    assert beam_search(torn, CHARACTERS, lm) == "the cat"
    # clear ink is not overruled: a letter under `prune` in its frame is never tried
    sure = frames(*spell("the c"), {"o": 0.998, "a": 0.0008}, {}, *spell("t"))
    assert beam_search(sure, CHARACTERS, lm) == "the cot"


class GreedyStandIn:
    """The part of rapidocr's CTCLabelDecode that LmCtcDecode uses: `character`, and a call
    giving (text, confidence) per line."""

    character = CHARACTERS

    def __call__(self, preds, return_word_box=False, **kwargs):
        best = preds.argmax(axis=2)
        lines = []
        for row, idx in zip(preds, best, strict=True):
            kept = [i for t, i in enumerate(idx) if i and (t == 0 or i != idx[t - 1])]
            conf = float(np.mean([row[t, i] for t, i in enumerate(idx) if i])) if kept else 0.0
            lines.append(("".join(CHARACTERS[i] for i in kept), conf))
        return lines, ["words"] if return_word_box else []


def test_decoder_keeps_greedy_confidence_and_ignores_a_batchs_padding():
    lm = CharNgramLM.build(CORPUS, order=5, min_count=1)
    short = frames(*spell("the c"), {"o": 0.5, "a": 0.46}, {}, *spell("t"))
    padding = frames(*spell("oooo"))  # what the recogniser made of the grey padding
    wide = frames(*spell("a cat sat on the cat"))
    batch = np.stack([np.concatenate([short, padding]), wide[: len(short) + len(padding)]])
    ratio = len(short) / len(batch[0])
    decoder = LmCtcDecode(GreedyStandIn(), lm)
    lines, _ = decoder(batch, False, wh_ratio_list=[ratio, 1.0], max_wh_ratio=1.0)
    greedy, _ = GreedyStandIn()(batch)
    assert lines[0][0] == "the cat" and "oo" in greedy[0][0]  # padding frames are not read
    assert [score for _, score in lines] == [score for _, score in greedy]
    # word boxes are cut from the greedy path's frames: asked for them, the greedy reading stays
    assert decoder(batch, True, wh_ratio_list=[ratio, 1.0], max_wh_ratio=1.0)[0] == greedy


def test_another_languages_model_and_recording_stay_in_the_thread_that_set_them():
    """An engine shared by a worker's thread pool switches its decoder per page: one page's
    English LM or frame recording must not leak into a page another thread is reading."""
    import threading

    torn = frames(*spell("the c"), {"o": 0.5, "a": 0.46}, {}, *spell("t"))
    batch = torn[None]
    main = CharNgramLM.build(CORPUS, order=5, min_count=1)
    other = CharNgramLM.build(["the cot", "a cot", "cots"] * 5, order=5, min_count=1)
    decoder = LmCtcDecode(GreedyStandIn(), main)
    switched, recorded = threading.Event(), []
    done = threading.Event()
    seen: list[str] = []

    def other_page():
        decoder.lm, decoder.recording = other, recorded
        switched.set()
        done.wait(5)
        seen.append(decoder(batch)[0][0][0])

    thread = threading.Thread(target=other_page)
    thread.start()
    assert switched.wait(5)
    assert decoder.lm is main and decoder.recording is None
    assert decoder(batch)[0][0][0] == "the cat"
    done.set()
    thread.join(5)
    assert seen == ["the cot"] and [text for text, _, _ in recorded] == ["the cot"]
    decoder.lm = None  # back to the main model
    assert decoder.lm is main
