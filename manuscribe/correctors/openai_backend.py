"""Correction through any OpenAI-compatible chat server (vLLM, llama.cpp server, ...).

`openai_base_url` (e.g. http://localhost:8000/v1) and `model` (the served model name) select the
server and model; `openai_concurrency` requests run at once so the server can batch them. An API
key, if the server needs one, is read from MANUSCRIBE_OPENAI_API_KEY or OPENAI_API_KEY and never
appears in settings(). At start the server's model list is checked, so a wrong URL or model name
fails at once with a clear message instead of once per block.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor

from manuscribe.correctors.base import CorrectorError
from manuscribe.correctors.batching import (
    CorrectionOptions,
    Generation,
    GenerationRequest,
    GuardedCorrector,
)

log = logging.getLogger("manuscribe.correctors")

RETRIES = 3
TIMEOUT_S = 120.0


def _api_key() -> str | None:
    return os.environ.get("MANUSCRIBE_OPENAI_API_KEY") or os.environ.get("OPENAI_API_KEY")


class OpenAICorrector(GuardedCorrector):
    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        options: CorrectionOptions,
        concurrency: int = 8,
        timeout: float = TIMEOUT_S,
    ):
        super().__init__(model, options)
        try:
            import httpx
        except ImportError as exc:
            raise CorrectorError("the openai corrector needs httpx: pip install httpx") from exc
        self._httpx = httpx
        self.base_url = base_url.rstrip("/")
        self.concurrency = max(1, int(concurrency))
        headers = {"Authorization": f"Bearer {key}"} if (key := _api_key()) else {}
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(max_connections=self.concurrency),
        )
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="openai-corrector")
        self._check_server()

    @classmethod
    def from_settings(cls, settings) -> OpenAICorrector:
        return cls(
            base_url=getattr(settings, "openai_base_url", "http://localhost:8000/v1"),
            model=settings.model,
            options=CorrectionOptions.from_settings(settings),
            concurrency=getattr(settings, "openai_concurrency", 8),
        )

    def _check_server(self) -> None:
        httpx = self._httpx
        try:
            response = self._client.get("/models")
            response.raise_for_status()
            served = [m.get("id") for m in response.json().get("data", [])]
        except httpx.HTTPStatusError as exc:
            self.close()
            raise CorrectorError(
                f"OpenAI-compatible server at {self.base_url} answered "
                f"{exc.response.status_code} to GET /models (check openai_base_url and the "
                "API key in MANUSCRIBE_OPENAI_API_KEY)"
            ) from None
        except (httpx.HTTPError, ValueError) as exc:
            self.close()
            raise CorrectorError(
                f"cannot reach an OpenAI-compatible server at {self.base_url} "
                f"({type(exc).__name__}: {exc}). Start one (e.g. `vllm serve {self.model}` or "
                "`python -m llama_cpp.server --model FILE.gguf`) or set openai_base_url / "
                "MANUSCRIBE_OPENAI_BASE_URL"
            ) from None
        if served and self.model not in served:
            self.close()
            raise CorrectorError(
                f"the server at {self.base_url} does not serve model {self.model!r}; it serves: "
                f"{', '.join(map(str, served))}. Set `model` (MANUSCRIBE_MODEL / --model) to one "
                "of these"
            )

    def backend_settings(self) -> dict:
        return {"temperature": 0.0}

    def _one(self, request: GenerationRequest) -> Generation:
        httpx = self._httpx
        body = {
            "model": self.model,
            "messages": request.messages,
            "temperature": 0.0,
            "max_tokens": request.max_new_tokens,
            "seed": 0,
        }
        if request.stop:
            body["stop"] = request.stop
        error = ""
        for attempt in range(RETRIES):
            try:
                response = self._client.post("/chat/completions", json=body)
                if response.status_code >= 500 or response.status_code == 429:
                    error = f"HTTP {response.status_code}"
                    time.sleep(0.5 * 2**attempt)
                    continue
                response.raise_for_status()
                data = response.json()
                content = data["choices"][0]["message"].get("content") or ""
                tokens = int((data.get("usage") or {}).get("completion_tokens", 0))
                return Generation(text=content, tokens=tokens)
            except httpx.TransportError as exc:
                error = f"{type(exc).__name__}: {exc}"
                time.sleep(0.5 * 2**attempt)
            except (httpx.HTTPStatusError, KeyError, IndexError, ValueError) as exc:
                return Generation(text=None, error=f"{type(exc).__name__}: {exc}"[:200])
        return Generation(text=None, error=f"{error} after {RETRIES} tries"[:200])

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        return list(self._pool.map(self._one, requests))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()
