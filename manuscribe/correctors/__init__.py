"""Correctors behind one interface; `create_corrector(name, settings)` picks one."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from manuscribe.correctors.base import BlockInput, Corrector, CorrectorError

if TYPE_CHECKING:
    from manuscribe.settings import Settings

log = logging.getLogger(__name__)

CORRECTORS = ("auto", "none", "transformers", "llamacpp", "openai")


def resolve_auto() -> str:
    """`auto` means transformers where a CUDA GPU is present, otherwise no correction.

    A 3B model on CPU is minutes per page, so it must be asked for explicitly there.
    """
    try:
        import torch
    except ImportError:
        return "none"
    return "transformers" if torch.cuda.is_available() else "none"


def create_corrector(name: str, settings: Settings) -> Corrector:
    if name == "auto":
        name = resolve_auto()
        log.info("corrector auto -> %s", name)
    if name == "none":
        from manuscribe.correctors.none import NoCorrector

        return NoCorrector()
    if name == "transformers":
        from manuscribe.correctors.transformers_backend import TransformersCorrector

        return TransformersCorrector.from_settings(settings)
    if name == "llamacpp":
        from manuscribe.correctors.llamacpp_backend import LlamaCppCorrector

        return LlamaCppCorrector.from_settings(settings)
    if name == "openai":
        from manuscribe.correctors.openai_backend import OpenAICorrector

        return OpenAICorrector.from_settings(settings)
    raise CorrectorError(f"unknown corrector {name!r}; choose one of: {', '.join(CORRECTORS)}")


__all__ = ["CORRECTORS", "BlockInput", "Corrector", "CorrectorError", "create_corrector"]
