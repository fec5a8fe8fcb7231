"""The OpenAI-compatible backend against a real llama_cpp.server on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from tests.requires import require_module

require_module("httpx", "pip install -e '.[openai]' (or make install-test)")
require_module("llama_cpp.server", "pip install -e '.[llamacpp]' (or make install-test)")

import httpx  # noqa: E402

from manuscribe.correctors import create_corrector  # noqa: E402
from manuscribe.correctors.base import BlockInput, CorrectorError  # noqa: E402
from manuscribe.settings import Settings  # noqa: E402
from tests.correction_checks import check_guarded  # noqa: E402

try:
    from tests.tiny_models import smollm2_gguf  # noqa: F401
except ImportError:
    from tiny_models import smollm2_gguf  # noqa: F401

ALIAS = "smollm2-135m-instruct"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(smollm2_gguf, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf),
           "--model_alias", ALIAS, "--host", "127.0.0.1", "--port", str(port),
           "--n_ctx", "2048", "--n_threads", "1"]  # fmt: skip
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 60
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def settings(url: str, **values) -> Settings:
    base = {"corrector": "openai", "model": ALIAS, "openai_base_url": url, "max_new_tokens": 48}
    return Settings(**{**base, **values})


def test_concurrent_requests_are_guarded(server, monkeypatch):
    monkeypatch.setenv("MANUSCRIBE_OPENAI_API_KEY", "sk-test-secret")
    blocks = [
        BlockInput("Dear Mrs Stanfrd, we were\ndeeply grievd to hear", "en", 0.7),
        BlockInput("", "en", 0.9),
        BlockInput("Ceci est mon Testamcnt.", "fr", 0.8),
        BlockInput("Yours very truly", "en", 0.9),
        BlockInput("Fait a Paris le 2 Aout 1914", "fr", 0.1),
    ]
    corrector = create_corrector("openai", settings(server, openai_concurrency=3))
    try:
        results = corrector.correct(blocks)
        check_guarded(blocks, results)
        assert results[1].status == results[4].status == "skipped"
        for result in results:
            if result.status != "skipped":
                assert result.model == ALIAS
        assert corrector.throughput.blocks == 3 and corrector.throughput.tokens > 0
        assert "sk-test-secret" not in repr(corrector.settings())
    finally:
        corrector.close()


def test_wrong_model_name_lists_what_the_server_serves(server):
    with pytest.raises(CorrectorError) as info:
        create_corrector("openai", settings(server, model="Qwen/Qwen2.5-3B-Instruct"))
    assert "does not serve model 'Qwen/Qwen2.5-3B-Instruct'" in str(info.value)
    assert ALIAS in str(info.value)


def test_unreachable_server_gives_a_clear_error():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(CorrectorError, match="cannot reach an OpenAI-compatible server"):
        create_corrector("openai", settings(url))
