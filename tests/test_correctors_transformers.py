"""The transformers backend with a real (tiny, random) Qwen2 model: real generate, no hub."""

from __future__ import annotations

import logging
import shutil

import pytest

from tests.requires import require_module

LLM = "pip install -e '.[llm]' (or make install-test)"
require_module("torch", LLM)
require_module("transformers", LLM)

from manuscribe.correctors import create_corrector  # noqa: E402
from manuscribe.correctors.base import BlockInput, CorrectorError  # noqa: E402
from manuscribe.correctors.batching import AdaptiveBatcher  # noqa: E402
from manuscribe.correctors.guards import GuardConfig, rejection_reason  # noqa: E402
from manuscribe.settings import Settings  # noqa: E402

try:
    from tests.tiny_models import hub_snapshot, tiny_qwen  # noqa: F401
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from tiny_models import hub_snapshot, tiny_qwen  # noqa: F401

BLOCKS = [
    BlockInput("Ceci est mon Testamcnt.\nPar le présent j'institue", "fr", 0.8),
    BlockInput("", "fr", 0.9),
    BlockInput("Dear Mrs Stanfrd, we were\ndeeply grievd to hear", "en", 0.7),
    BlockInput("12 / 1914", "fr", 0.9),
    BlockInput("illegible scrawl", "en", 0.05),
    BlockInput("Fait a Paris le 2 Aout 1914", "fr", 0.6),
]


def settings(model, **extra) -> Settings:
    base = {"corrector": "transformers", "device": "cpu", "jobs": 2, "max_new_tokens": 24}
    return Settings(**{**base, "model": str(model), **extra})


def check_guarded(blocks, results):
    assert len(results) == len(blocks)
    for block, result in zip(blocks, results, strict=True):
        assert result.status in ("applied", "rejected", "skipped")
        assert result.reason
        if result.status == "applied":
            assert rejection_reason(block.text, result.text, GuardConfig()) is None
        else:
            assert result.text is None


def test_real_generation_is_guarded(tiny_qwen):
    corrector = create_corrector("transformers", settings(tiny_qwen))
    try:
        results = corrector.correct(BLOCKS)
        check_guarded(BLOCKS, results)
        assert [results[i].status for i in (1, 3, 4)] == ["skipped"] * 3
        # random weights produce gibberish: nothing may be applied
        assert all(results[i].status == "rejected" for i in (0, 2, 5)), results
        assert corrector.throughput.blocks == 3 and corrector.throughput.tokens > 0
        s = corrector.settings()
        assert s["backend"] == "transformers" and s["model"] == str(tiny_qwen)
        assert s["guards"]["max_edit_ratio"] == 0.35 and s["dtype"] == "float32"
        assert not any("key" in k.lower() or k.lower() == "token" for k in s)
    finally:
        corrector.close()


def test_batched_generation_matches_one_by_one(tiny_qwen):
    blocks = [BlockInput(f"ligne {w} du testament", "fr", 0.9) for w in ("un", "deux", "trois")]
    blocks.append(BlockInput("a much longer line of handwritten text to pad", "en", 0.9))
    big = create_corrector("transformers", settings(tiny_qwen, batch_tokens=100_000))
    small = create_corrector("transformers", settings(tiny_qwen, batch_tokens=64))
    try:
        from manuscribe.correctors.batching import GenerationRequest, new_token_cap
        from manuscribe.correctors.prompt import build_messages

        requests = [
            GenerationRequest(
                build_messages(b.text, b.language, [], True),
                b.text,
                new_token_cap(b.text, big.options),
            )  # fmt: skip
            for b in blocks
        ]
        batched = big.generate(requests)
        single = small.generate(requests)
        assert big.batcher.batches_run == 1
        assert small.batcher.batches_run == len(blocks)
        assert [g.text for g in batched] == [g.text for g in single]
    finally:
        big.close()
        small.close()


def test_other_chat_template_works_by_changing_the_model(tiny_qwen, tmp_path):
    mistral = tmp_path / "tiny-mistral-template"
    shutil.copytree(tiny_qwen, mistral)
    (mistral / "chat_template.jinja").write_text(
        "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}"
        "[INST] {{ m['content'] }} [/INST]{% elif m['role'] == 'system' %}{{ m['content'] }}"
        "\n{% else %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
    )
    corrector = create_corrector("transformers", settings(mistral))
    try:
        prompt = corrector._prompt(
            type("R", (), {"messages": [{"role": "user", "content": "hello"}]})()
        )
        assert "[INST] hello [/INST]" in prompt
        check_guarded(BLOCKS[:1], corrector.correct(BLOCKS[:1]))
    finally:
        corrector.close()


def test_missing_cuda_warns_and_falls_back_to_cpu(tiny_qwen, caplog, monkeypatch):
    import torch

    # no CUDA, also on a machine that has a GPU: the test runs everywhere
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="manuscribe.correctors"):
        corrector = create_corrector("transformers", settings(tiny_qwen, device="cuda"))
    assert corrector.device == "cpu"
    assert "CUDA not detected" in caplog.text
    corrector.close()
    assert corrector._model is None


def test_hub_id_resolves_from_local_snapshot_in_offline_mode(tiny_qwen, tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    hub_snapshot(tiny_qwen, cache, "manuscribe-test/tiny-qwen2", commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for revision in (None, commit):
        corrector = create_corrector(
            "transformers",
            settings("manuscribe-test/tiny-qwen2", model_revision=revision),
        )
        assert corrector.path.name == commit
        check_guarded(BLOCKS[:2], corrector.correct(BLOCKS[:2]))
        corrector.close()


def test_unavailable_model_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CorrectorError) as info:
        create_corrector("transformers", settings("Qwen/Qwen2.5-3B-Instruct"))
    message = str(info.value)
    assert "'Qwen/Qwen2.5-3B-Instruct' is not available" in message
    assert "offline mode is on" in message and "Tried:" in message
    assert "aa8e72537993ba99e69dfaafa59ed015b17504d1" in message  # the pinned revision
    assert "local copy" in message and "Traceback" not in message
    with pytest.raises(CorrectorError, match="does not exist"):
        create_corrector("transformers", settings(tmp_path / "no-such-model"))


def test_oom_halves_the_batch_then_degrades_without_looping():
    import torch

    calls = []

    def run(batch):
        calls.append(len(batch))
        if len(batch) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return [f"out{i}" for i in batch]

    def is_oom(exc):
        return isinstance(exc, torch.OutOfMemoryError)

    batcher = AdaptiveBatcher(batch_tokens=10_000)
    out = batcher.run([10] * 8, [10] * 8, run, is_oom, lambda exc: False)
    assert out == [f"out{i}" for i in range(8)]
    assert calls[:3] == [8, 4, 2] and batcher.max_rows == 2

    degraded = []

    def always_oom(batch):
        raise torch.OutOfMemoryError("CUDA out of memory")

    def degrade(exc):
        degraded.append(exc)
        return len(degraded) < 2  # e.g. GPU -> CPU once, then nothing left

    with pytest.raises(CorrectorError, match="nothing left to reduce"):
        AdaptiveBatcher(batch_tokens=10_000).run([10] * 3, [10] * 3, always_oom, is_oom, degrade)
    assert len(degraded) == 2
