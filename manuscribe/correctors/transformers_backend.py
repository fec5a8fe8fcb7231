"""Correction with a Hugging Face instruct model through transformers (default on CUDA).

Batched greedy generation with left padding; the prompt comes from the tokenizer's chat
template, so any instruct model works by changing `model`. bf16 on a GPU, float32 on CPU.
CUDA missing -> warning and CPU. CUDA out of memory -> the batch is halved; a single prompt
that still does not fit moves the model to the CPU with a warning.
"""

from __future__ import annotations

import gc
import logging

from manuscribe.correctors.base import CorrectorError
from manuscribe.correctors.batching import (
    AdaptiveBatcher,
    CorrectionOptions,
    Generation,
    GenerationRequest,
    GuardedCorrector,
)
from manuscribe.correctors.model_source import effective_revision, resolve_transformers_model

log = logging.getLogger("manuscribe.correctors")


def pick_device(requested: str) -> str:
    """`auto` -> cuda when available; an unavailable cuda falls back to CPU with a warning."""
    import torch

    requested = (requested or "auto").lower()
    if requested == "cpu":
        return "cpu"
    if torch.cuda.is_available():
        return "cuda" if requested == "auto" else requested
    log.warning(
        "CUDA not detected (device=%s): the transformers corrector runs on the CPU, "
        "which is slow for multi-billion-parameter models",
        requested,
    )
    return "cpu"


def _is_oom(exc: BaseException) -> bool:
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    return isinstance(exc, oom) or "CUDA out of memory" in str(exc)


class TransformersCorrector(GuardedCorrector):
    name = "transformers"

    def __init__(
        self,
        model: str,
        options: CorrectionOptions,
        revision: str | None = None,
        device: str = "auto",
        cpu_threads: int | None = None,
    ):
        super().__init__(model, options, effective_revision(model, revision))
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise CorrectorError(
                "the transformers corrector needs torch and transformers: "
                "pip install 'manuscribe[llm]' (CPU: torch==2.13.0)"
            ) from exc
        self._torch = torch
        self.path = resolve_transformers_model(model, self.revision)
        self.device = pick_device(device)
        if self.device == "cpu" and cpu_threads:
            torch.set_num_threads(cpu_threads)  # share the cores with the OCR workers
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        except Exception as exc:
            raise CorrectorError(
                f"cannot load the tokenizer of {model!r} from {self.path}: {exc}"
            ) from exc
        if not getattr(self.tokenizer, "chat_template", None):
            raise CorrectorError(
                f"{model!r} has no chat template: the corrector needs an instruct/chat model"
            )
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._model = self._load(AutoModelForCausalLM, self.device)
        self.batcher = AdaptiveBatcher(options.batch_tokens)
        # benchmarks only: generate every block's full token cap (like vLLM's ignore_eos)
        self.ignore_eos = False
        self.stop_ids = self._stop_ids()
        log.info("transformers corrector: %s on %s (%s)", model, self.device, self.path)

    @classmethod
    def from_settings(cls, settings) -> TransformersCorrector:
        return cls(
            model=settings.model,
            options=CorrectionOptions.from_settings(settings),
            revision=getattr(settings, "model_revision", None),
            device=getattr(settings, "device", "auto"),
            cpu_threads=getattr(settings, "effective_threads", None),
        )

    def _load(self, auto_cls, device: str):
        torch = self._torch
        on_gpu = device.startswith("cuda")
        try:
            model = auto_cls.from_pretrained(
                self.path,
                dtype=torch.bfloat16 if on_gpu else torch.float32,
                attn_implementation="sdpa" if on_gpu else "eager",
            )
            model.to(device)
        except Exception as exc:
            if on_gpu and _is_oom(exc):
                log.warning("CUDA out of memory loading %s: falling back to CPU", self.model)
                self._free_cuda()
                return self._load(auto_cls, "cpu")
            raise CorrectorError(
                f"cannot load model {self.model!r} from {self.path}: {exc}"
            ) from exc
        self.device = device
        model.eval()
        return model

    def _stop_ids(self) -> list[int]:
        ids = set()
        for token in (self.tokenizer.eos_token, "<|im_end|>", "<|endoftext|>", "<|eot_id|>"):
            if token and token in self.tokenizer.get_vocab():
                ids.add(self.tokenizer.convert_tokens_to_ids(token))
        gen_eos = getattr(self._model.generation_config, "eos_token_id", None)
        if isinstance(gen_eos, int):
            ids.add(gen_eos)
        elif gen_eos:
            ids.update(gen_eos)
        return sorted(ids)

    def backend_settings(self) -> dict:
        return {"dtype": "bfloat16" if self.device.startswith("cuda") else "float32"}

    def _prompt(self, request: GenerationRequest) -> str:
        return self.tokenizer.apply_chat_template(
            request.messages, tokenize=False, add_generation_prompt=True
        )

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        prompts = [self._prompt(r) for r in requests]
        lengths = [len(ids) for ids in self.tokenizer(prompts, add_special_tokens=False).input_ids]
        caps = [r.max_new_tokens for r in requests]

        def run(batch: list[int]) -> list[Generation]:
            stops = sorted({s for i in batch for s in requests[i].stop})
            return self._generate_batch(
                [prompts[i] for i in batch], max(caps[i] for i in batch), stops
            )

        return self.batcher.run(lengths, caps, run, self._oom, self._degrade)

    def _generate_batch(
        self, prompts: list[str], max_new_tokens: int, stops: list[str]
    ) -> list[Generation]:
        torch = self._torch
        enc = self.tokenizer(
            prompts, return_tensors="pt", padding=True, add_special_tokens=False
        ).to(self.device)
        with torch.inference_mode():
            out = self._model.generate(
                **enc,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                max_new_tokens=max_new_tokens,
                eos_token_id=self.stop_ids,
                pad_token_id=self.tokenizer.pad_token_id,
                stop_strings=None if self.ignore_eos or not stops else stops,
                tokenizer=None if self.ignore_eos or not stops else self.tokenizer,
                min_new_tokens=max_new_tokens if self.ignore_eos else None,
            )
        new = out[:, enc.input_ids.shape[1] :].cpu()
        results = []
        stops = set(self.stop_ids) | {self.tokenizer.pad_token_id}
        for row in new.tolist():
            count = 0
            for tok in row:
                if tok in stops:
                    break
                count += 1
            text = self.tokenizer.decode(row[:count], skip_special_tokens=True)
            results.append(Generation(text=text, tokens=count + (count < len(row))))
        return results

    def _oom(self, exc: BaseException) -> bool:
        if not _is_oom(exc):
            return False
        self._free_cuda()
        return True

    def _degrade(self, exc: BaseException) -> bool:
        """A single prompt ran out of GPU memory: move the model to the CPU (once)."""
        if not self.device.startswith("cuda"):
            return False
        log.warning("CUDA out of memory on a single prompt: moving %s to the CPU", self.model)
        self._model.to("cpu", dtype=self._torch.float32)
        self.device = "cpu"
        self._free_cuda()
        return True

    def _free_cuda(self) -> None:
        gc.collect()
        torch = self._torch
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def close(self) -> None:
        self._model = None
        self._free_cuda()
