"""Where a correction model comes from: a local path, the Hugging Face cache, or the hub.

Every failure becomes a `CorrectorError` whose message says what was tried and how to point
manuscribe at a local copy; the hub's own exception is chained, not shown as the message.
Offline mode (`HF_HUB_OFFLINE=1` or `TRANSFORMERS_OFFLINE=1`) is honoured: only the cache is read.
"""

from __future__ import annotations

import os
from pathlib import Path

from manuscribe.correctors.base import CorrectorError

# Revisions used when `model_revision` is not set, so the default model is reproducible.
PINNED_REVISIONS = {
    "Qwen/Qwen2.5-3B-Instruct": "aa8e72537993ba99e69dfaafa59ed015b17504d1",
}

# Files a transformers checkpoint needs (no other weight formats, no README images).
TRANSFORMERS_FILES = [
    "*.json",
    "*.safetensors",
    "*.txt",
    "*.model",
    "*.tiktoken",
    "*.jinja",
]

_TRUE = {"1", "true", "yes", "on"}


def offline_mode() -> bool:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in _TRUE:
            return True
    return False


def hub_cache_dir() -> Path:
    """The HF hub cache, read from the environment at call time."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def effective_revision(model: str, revision: str | None) -> str | None:
    return revision or PINNED_REVISIONS.get(model)


def _looks_local(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~")) or Path(model).expanduser().exists()


def _advice(model: str, what: str, revision: str | None = None) -> str:
    rev = f" --revision {revision}" if revision else ""
    return (
        f"To use a local copy, set `model` (MANUSCRIBE_MODEL or --model) to {what}, or "
        f"download it on a connected machine (`hf download {model}{rev}`) into the HF cache "
        "(HF_HOME / HF_HUB_CACHE) and copy that cache here."
    )


def _hub_failure(model: str, revision: str | None, exc: BaseException, tried: list[str]) -> str:
    from huggingface_hub import errors

    if isinstance(exc, errors.RevisionNotFoundError):
        cause = f"revision {revision!r} does not exist"
    elif isinstance(exc, errors.RepositoryNotFoundError):
        cause = "no such repository (or it is private/gated)"
    elif isinstance(exc, errors.LocalEntryNotFoundError) or offline_mode():
        cause = (
            "not in the local cache and offline mode is on"
            if offline_mode()
            else ("not in the local cache and the hub could not be reached")
        )
    else:
        cause = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return f"{cause}. Tried: " + "; ".join(tried) + "."


def resolve_transformers_model(model: str, revision: str | None = None) -> Path:
    """A directory with config.json, tokenizer and weights for `model` (path or hub id)."""
    path = Path(model).expanduser()
    if _looks_local(model):
        if (path / "config.json").is_file():
            return path
        raise CorrectorError(
            f"correction model {model!r}: local path "
            + ("has no config.json" if path.exists() else "does not exist")
            + ". "
            + _advice(model, "a folder with config.json, tokenizer files and *.safetensors")
        )
    revision = effective_revision(model, revision)
    cache = hub_cache_dir()
    offline = offline_mode()
    rev = revision or "main"
    tried = [f"local path {str(path)!r} (not found)", f"HF cache {str(cache)!r} at revision {rev}"]
    if not offline:
        tried.append(f"download from the Hugging Face hub at revision {rev}")
    try:
        from huggingface_hub import snapshot_download

        local = snapshot_download(
            repo_id=model,
            revision=revision,
            cache_dir=cache,
            local_files_only=offline,
            allow_patterns=TRANSFORMERS_FILES,
        )
    except ImportError as exc:
        raise CorrectorError(
            "the transformers corrector needs huggingface-hub: pip install 'manuscribe[llm]'"
        ) from exc
    except Exception as exc:  # the hub raises many types; all mean "model not available"
        raise CorrectorError(
            f"correction model {model!r} is not available: "
            + _hub_failure(model, revision, exc, tried)
            + " "
            + _advice(
                model, "a folder with config.json, tokenizer files and *.safetensors", revision
            )
        ) from exc
    return Path(local)


def resolve_gguf(repo_or_path: str, filename: str, revision: str | None = None) -> Path:
    """A GGUF file: `filename` as a path, `repo_or_path` as a file or folder, or from the hub."""
    advice = _advice(repo_or_path, "a folder holding the .gguf file, or set gguf_file to its path")
    for candidate in (Path(filename).expanduser(), Path(repo_or_path).expanduser()):
        if candidate.suffix == ".gguf" and candidate.is_file():
            return candidate
    folder = Path(repo_or_path).expanduser()
    if _looks_local(repo_or_path) or Path(filename).is_absolute():
        where = folder / filename if not Path(filename).is_absolute() else Path(filename)
        if where.is_file():
            return where
        raise CorrectorError(f"GGUF model file {str(where)!r} does not exist. {advice}")
    cache = hub_cache_dir()
    offline = offline_mode()
    tried = [f"local file {filename!r} (not found)", f"HF cache {str(cache)!r}"]
    if not offline:
        tried.append(f"download of {repo_or_path}/{filename} from the Hugging Face hub")
    try:
        from huggingface_hub import hf_hub_download

        local = hf_hub_download(
            repo_id=repo_or_path,
            filename=filename,
            revision=revision,
            cache_dir=cache,
            local_files_only=offline,
        )
    except ImportError as exc:
        raise CorrectorError(
            "downloading a GGUF model needs huggingface-hub: pip install huggingface-hub"
        ) from exc
    except Exception as exc:
        from huggingface_hub import errors

        if isinstance(exc, errors.RemoteEntryNotFoundError):
            cause = f"{repo_or_path} has no file {filename!r}. Tried: " + "; ".join(tried) + "."
        else:
            cause = _hub_failure(repo_or_path, revision, exc, tried)
        raise CorrectorError(
            f"GGUF correction model {repo_or_path}/{filename} is not available: {cause} {advice}"
        ) from exc
    return Path(local)
