"""Correction with a GGUF model through llama-cpp-python (runs anywhere, GPU optional).

The model is `gguf_file` as a path, or that file in `model` (a folder, or a hub repo such as
`Qwen/Qwen2.5-3B-Instruct-GGUF`, downloaded unless offline). The chat template comes from the
GGUF metadata. `gpu_layers` layers are offloaded when llama.cpp was built with GPU support; when
loading or decoding runs out of memory the layers are halved down to 0 (CPU), with a warning.
llama-cpp-python decodes one sequence at a time, so blocks run sequentially here: for GPU
throughput use the transformers backend or an OpenAI-compatible server (vLLM) instead.
"""

from __future__ import annotations

import logging
from pathlib import Path

from manuscribe.correctors.base import CorrectorError
from manuscribe.correctors.batching import (
    CorrectionOptions,
    Generation,
    GenerationRequest,
    GuardedCorrector,
)
from manuscribe.correctors.model_source import resolve_gguf

log = logging.getLogger("manuscribe.correctors")

DEFAULT_GGUF_REPO = "Qwen/Qwen2.5-3B-Instruct-GGUF"


def gguf_repo(model: str) -> str:
    """The repo or folder holding the GGUF: `model` itself, or its `-GGUF` sibling on the hub."""
    if model.endswith((".gguf", "-GGUF", "-gguf")) or Path(model).expanduser().exists():
        return model
    if model.startswith(("/", "./", "../", "~")):
        return model
    return f"{model}-GGUF" if "/" in model else DEFAULT_GGUF_REPO


class LlamaCppCorrector(GuardedCorrector):
    name = "llamacpp"

    def __init__(
        self,
        model_path: Path,
        model: str,
        options: CorrectionOptions,
        gpu_layers: int = 25,
        n_ctx: int = 4096,
        threads: int | None = None,
        revision: str | None = None,
    ):
        super().__init__(model, options, revision)
        try:
            import llama_cpp
        except ImportError as exc:
            raise CorrectorError(
                "the llamacpp corrector needs llama-cpp-python: pip install llama-cpp-python"
            ) from exc
        self._llama_cpp = llama_cpp
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.threads = threads
        if gpu_layers and not llama_cpp.llama_supports_gpu_offload():
            log.warning(
                "llama.cpp was built without GPU support: gpu_layers=%d ignored, running on CPU",
                gpu_layers,
            )
            gpu_layers = 0
        self.gpu_layers = gpu_layers
        self._llm = self._load()

    @classmethod
    def from_settings(cls, settings) -> LlamaCppCorrector:
        gguf_file = getattr(settings, "gguf_file", "qwen2.5-3b-instruct-q8_0.gguf")
        repo = getattr(settings, "gguf_model", None) or gguf_repo(settings.model)
        revision = getattr(settings, "gguf_revision", None)
        path = resolve_gguf(repo, gguf_file, revision)
        from_hub = repo.endswith("-GGUF") and not Path(gguf_file).expanduser().is_file()
        label = f"{repo}/{path.name}" if from_hub else path.name
        return cls(
            model_path=path,
            model=label,
            options=CorrectionOptions.from_settings(settings),
            gpu_layers=int(getattr(settings, "gpu_layers", 25)),
            n_ctx=int(getattr(settings, "llamacpp_n_ctx", 4096)),
            threads=getattr(settings, "effective_threads", None),
            revision=revision,
        )

    def _load(self):
        while True:
            try:
                return self._llama_cpp.Llama(
                    model_path=str(self.model_path),
                    n_gpu_layers=self.gpu_layers,
                    n_ctx=self.n_ctx,
                    n_threads=self.threads,
                    seed=0,
                    verbose=False,
                )
            except Exception as exc:
                if self.gpu_layers > 0:
                    self._fewer_layers(f"loading failed ({exc})")
                    continue
                raise CorrectorError(
                    f"llama.cpp cannot load {self.model_path}: {exc} (is it a valid GGUF file?)"
                ) from exc

    def _fewer_layers(self, why: str) -> None:
        new = self.gpu_layers // 2
        log.warning(
            "llama.cpp: %s with %d GPU layers; retrying with %d%s",
            why,
            self.gpu_layers,
            new,
            " (CPU only)" if new == 0 else "",
        )
        self.gpu_layers = new

    def backend_settings(self) -> dict:
        return {"gguf": self.model_path.name, "n_ctx": self.n_ctx}

    def _one(self, request: GenerationRequest) -> Generation:
        while True:
            try:
                response = self._llm.create_chat_completion(
                    messages=request.messages,
                    temperature=0.0,
                    top_k=1,
                    repeat_penalty=1.0,  # copying the source is the point: do not penalise it
                    max_tokens=request.max_new_tokens,
                    stop=request.stop or None,
                    seed=0,
                )
            except ValueError as exc:  # prompt longer than the context: this block only
                return Generation(text=None, error=str(exc).splitlines()[0][:200])
            except RuntimeError as exc:  # decode failure, typically out of GPU memory
                if self.gpu_layers > 0:
                    self._fewer_layers(f"decoding failed ({exc})")
                    self._llm.close()
                    self._llm = self._load()
                    continue
                return Generation(text=None, error=str(exc).splitlines()[0][:200])
            choice = response["choices"][0]
            usage = response.get("usage") or {}
            return Generation(
                text=choice["message"].get("content") or "",
                tokens=int(usage.get("completion_tokens", 0)),
            )

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        return [self._one(r) for r in requests]

    def close(self) -> None:
        if self._llm is not None:
            self._llm.close()
            self._llm = None
