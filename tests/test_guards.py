"""Guards on real cases: what a model may and may not do to a block of OCR text."""

from __future__ import annotations

import pytest

from manuscribe.correctors.base import BlockInput
from manuscribe.correctors.batching import CorrectionOptions, new_token_cap, plan_batches
from manuscribe.correctors.guards import GuardConfig, judge, rejection_reason, skip_reason
from manuscribe.correctors.prompt import build_messages, clean_output
from tests.requires import require_module

CFG = GuardConfig()
SPELLCHECKER = "pip install -e . (pyspellchecker is a core dependency)"

# OCR of a Poilus will (real GT line, with typical recognition errors)
WILL = "Ceci est mon Testamcnt.\nPar le présent j'institue\npour ma légataire univcrselle"
WILL_FIXED = "Ceci est mon Testament.\nPar le présent j'institue\npour ma légataire universelle"
LETTER = "Fait a Croissy s/ -sur-Seine le ce 2\nAout 1914\nPetit Pierre"


def test_a_plain_fix_is_applied():
    result = judge(WILL, WILL_FIXED, CFG, "m")
    assert result.status == "applied"
    assert result.text == WILL_FIXED
    assert "2 character edits" in result.reason


def test_unchanged_output_is_applied_as_unchanged():
    result = judge(WILL, WILL + "  ", CFG, "m")
    assert (result.status, result.reason, result.text) == ("applied", "unchanged", WILL)


@pytest.mark.parametrize(
    "candidate, reason",
    [
        # hallucinated additions
        (WILL_FIXED + " et ma maison", "adds text"),
        (
            "Ceci est mon Testament olographe.\nPar le présent j'institue\n"
            "pour ma légataire universelle",
            "adds text",
        ),
        (LETTER + "\nSigné devant notaire", "line count changed (3 -> 4)"),
        # changed numbers and dates
        (LETTER.replace("2", "3"), "numbers changed"),
        (LETTER.replace("1914", "1915"), "numbers changed"),
        (LETTER.replace("Aout", "Avril"), "dates changed"),
        # translated text
        (
            "This is my Will.\nBy the present I appoint\nas my universal legatee",
            "edit ratio",
        ),
        (
            "This is my Testament.\nBy the present j'institue\nfor my légataire universelle",
            "rewrites",
        ),
        # commentary and wrapping
        ("Here is the corrected text:\n" + WILL_FIXED, "commentary"),
        (
            "Ceci est mon Testament.\nPar le présent j'institue\nNote: fixed OCR errors",
            "commentary",
        ),
        ("<<<" + WILL_FIXED, "output contains '<<<'"),
        # empty or merged lines
        ("", "empty output"),
        (WILL_FIXED.replace("\n", " "), "line count changed (3 -> 1)"),
    ],
)
def test_harmful_outputs_are_rejected(candidate, reason):
    source = LETTER if "Croissy" in candidate or "Signé" in candidate else WILL
    result = judge(source, candidate, CFG, "m")
    assert result.status == "rejected", result
    assert result.text is None
    assert reason in result.reason


def test_rewriting_a_span_is_rejected_even_within_the_edit_budget():
    source = "Je lègue à ma femme\ntout ce que je possède et\nai acquis en communauté"
    candidate = "Je lègue à ma femme\ntout ce que je possède et\nai acquis en mariage"
    assert "rewrites" in rejection_reason(source, candidate, CFG)


def test_edit_ratio_and_length_ratio_bounds_come_from_config():
    source, candidate = "pour ma legatairc", "pour ma légataire"
    assert rejection_reason(source, candidate, CFG) is None
    strict = GuardConfig(max_edit_ratio=0.05)
    assert "edit ratio" in rejection_reason(source, candidate, strict)
    short = GuardConfig(min_length_ratio=0.99, max_length_ratio=1.0)
    assert "length ratio" in rejection_reason("ab cd ef", "ab cd e", short)


def test_glossary_terms_must_survive():
    cfg = GuardConfig(glossary=("Croissy",))
    source = "Fait a Croissy le 2"
    assert "glossary term 'Croissy'" in rejection_reason(source, "Fait a Croisy le 2", cfg)
    # fixing a misread glossary term to its listed spelling is fine
    assert rejection_reason("Fait a Croisy le 2", "Fait a Croissy le 2", cfg) is None


@pytest.mark.parametrize(
    "block, reason",
    [
        (BlockInput("", "fr", 0.9), "empty block"),
        (BlockInput("   \n ", "fr", 0.9), "empty block"),
        (BlockInput("12 / 1914\n391", "fr", 0.9), "no letters"),
        (BlockInput("Ceci est mon", "fr", 0.05), "OCR confidence 0.05 below 0.20"),
    ],
)
def test_skip_rules(block, reason):
    assert reason in skip_reason(block, CFG)


def test_normal_block_is_not_skipped():
    assert skip_reason(BlockInput(WILL, "fr", 0.8), CFG) is None


def test_no_output_is_skipped_not_rejected():
    assert judge(WILL, None, CFG, "m").status == "skipped"


def test_prompt_names_language_line_count_glossary_and_spelling_rule():
    system, user = build_messages(WILL, "fr", ["Croissy", "Petit Pierre"], True)
    assert "Language: French." in user["content"]
    assert "3 lines" in user["content"]
    assert WILL in user["content"]
    assert "Croissy; Petit Pierre" in system["content"]
    assert "do not modernise" in system["content"]
    _, user = build_messages("x", "und", [], False)
    assert "unknown" in user["content"]


def test_clean_output_removes_wrapping_only():
    assert clean_output("```\nabc\ndef\n```") == "abc\ndef"
    assert clean_output("<<<\nabc\n>>>") == "abc"
    assert clean_output("Here is it:\nabc") == "Here is it:\nabc"


def test_new_token_cap_bounds_generation_by_the_length_guard():
    opts = CorrectionOptions()
    assert new_token_cap("a" * 10, opts) == 21
    assert new_token_cap("a" * 10_000, opts) == opts.max_new_tokens


def test_plan_batches_respects_budget_and_sorts_by_length():
    prompts = [10, 200, 30, 190, 20, 500]
    news = [10] * 6
    batches = plan_batches(prompts, news, budget=450)
    assert sorted(i for b in batches for i in b) == list(range(6))
    assert batches[0] == [5]  # longer than the budget: alone, first
    for batch in batches:
        padded = len(batch) * (max(prompts[i] for i in batch) + 10)
        assert padded <= 450 or len(batch) == 1
    assert plan_batches(prompts, news, budget=10**6, max_rows=2) == [[5, 1], [3, 2], [4, 0]]


def test_lexicon_changed_words_must_become_real_words():
    require_module("spellchecker", SPELLCHECKER)
    # a misread non-word fixed to a real word: applied
    assert judge(WILL, WILL_FIXED, CFG, "m", "fr").status == "applied"
    # a real word "corrected" into another real word: rejected
    source = "ma femme née Level Rosalie"
    result = judge(source, "ma femme nue Level Rosalie", CFG, "m", "fr")
    assert result.status == "rejected" and "changes the valid word 'née'" in result.reason
    # a non-word "corrected" into another non-word: rejected
    result = judge("pour ma légataire univcrselle", "pour ma légataire univorselle", CFG, "m", "fr")
    assert result.status == "rejected" and "'univorselle' is not a known word" in result.reason
    # names from the glossary count as known
    cfg = GuardConfig(glossary=("Rosalie Levcl",))
    assert judge("ma femme Rosalie Lcvcl", "ma femme Rosalie Levcl", CFG, "m", "fr").status == (
        "rejected"
    )
    assert judge("ma femme Rosalie Lcvcl", "ma femme Rosalie Levcl", cfg, "m", "fr").status == (
        "applied"
    )
    # no dictionary for the language (or lexicon off): only the other guards apply
    assert judge(source, "ma femme nue Level Rosalie", CFG, "m", "la").status == "applied"
    off = GuardConfig(lexicon=False)
    assert judge(source, "ma femme nue Level Rosalie", off, "m", "fr").status == "applied"


@pytest.mark.parametrize(
    "source, candidate, reason",
    [
        # seen from SmolLM2 on the evaluation set: each of these raised the CER
        ("Due au ou s de duurs,", "Due au s de duurs,", "drops text: 'ou'"),
        (
            "desire to hane the tibet por whas\nover is reguired , Dent to hum\nas Menlo Bark",
            "desire to hane the tibet por whas\nover is reguired\nas Menlo Bark",
            "drops text: ', Dent to hum'",
        ),
        ("Rait an fort du tont\nC ningf quato", "Rait an fort du tont.\nC ningf quato.", "punct"),
        ("il fukt\nmon testament", "il fukt\nMon testament", "changes the case of 'mon'"),
    ],
)
def test_weak_model_edits_that_hurt_are_rejected(source, candidate, reason):
    result = judge(source, candidate, CFG, "m", "fr")
    assert result.status == "rejected" and reason in result.reason


def test_plausible_small_fixes_pass():
    # one added full stop, a c/C case misreading, a split of two run-together words
    assert rejection_reason("Tns E.C Wrighn", "Tns E.C. Wrighn", CFG) is None
    assert rejection_reason("le cure de Croissy", "le Cure de Croissy", CFG) is None
    assert rejection_reason("privenme,armée gum", "privenme, armée gum", CFG) is None


def test_unknown_language_uses_the_union_of_the_word_lists():
    require_module("spellchecker", SPELLCHECKER)
    # seen in the pipeline on a block whose language was not identified
    result = judge("ens de 3aril 186y.", "en de 3aril 186y.", CFG, "m", "und")
    assert result.status == "rejected" and "changes the valid word 'ens'" in result.reason
    assert judge("Dear Mrs Stanfrd", "Dear Mrs Stanford", CFG, "m", "und").status == "applied"
