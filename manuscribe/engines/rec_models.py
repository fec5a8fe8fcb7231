"""Which line recogniser the rapidocr engine reads with (setting `ocr_model`).

- `default`: the handwriting recogniser manuscribe ships (manuscribe/models/, see docs/models.md)
- `ppocr`: rapidocr's own PP-OCR recogniser (printed text; the engine before the handwriting model)
- a path to an ONNX recogniser, such as one `manuscribe train` wrote
- `storage:<key>`: a model in the job's storage (S3 or a folder), as `manuscribe submit` uploads
  one; a worker fetches it once into its cache, named by its key.

A model's identity is the sha256 of its file: it goes into the OCR fingerprint, so a new model
recomputes the OCR and nothing else.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from manuscribe.engines.base import EngineError
from manuscribe.settings import cache_root

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL = "manuscribe-htr-latin-v6"
STORAGE_PREFIX = "storage:"


@dataclass(frozen=True)
class RecModel:
    """A resolved recogniser: `path` None means rapidocr's own."""

    spec: str
    path: Path | None
    name: str
    sha256: str


@lru_cache(maxsize=32)
def file_sha256(path: Path, size: int, mtime: float) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _identify(spec: str, path: Path) -> RecModel:
    if not path.is_file():
        raise EngineError(f"OCR model {spec!r}: no such file {path}")
    stat = path.stat()
    digest = file_sha256(path, stat.st_size, stat.st_mtime)
    return RecModel(spec=spec, path=path, name=model_name(path), sha256=digest)


def model_name(path: Path) -> str:
    """The name a model carries in its metadata, else its file name; checks it is a recogniser."""
    meta = read_metadata(path)
    if "character" not in meta:
        raise EngineError(f"{path}: not a PP-OCR recogniser (no `character` metadata)")
    return meta.get("manuscribe_model") or path.stem


def read_metadata(path: Path) -> dict[str, str]:
    """The ONNX file's metadata (its character list, name, language model, ...); read once per
    file version, since resolving a model and loading its language model both need it."""
    stat = path.stat()
    return dict(_metadata(path, stat.st_size, stat.st_mtime))


@lru_cache(maxsize=8)
def _metadata(path: Path, size: int, mtime: float) -> dict[str, str]:
    try:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return dict(session.get_modelmeta().custom_metadata_map)
    except Exception as exc:  # onnxruntime raises its own error types
        raise EngineError(f"{path}: not a loadable ONNX model ({exc})") from exc


@lru_cache(maxsize=4)
def language_model(model: RecModel):
    """The character language model a recogniser carries (engines/char_lm.py), or None."""
    from manuscribe.engines.char_lm import METADATA_KEY, CharNgramLM

    if model.path is None:
        return None
    value = read_metadata(model.path).get(METADATA_KEY)
    if not value:
        return None
    try:
        return CharNgramLM.from_metadata(value)
    except (ValueError, KeyError, TypeError) as exc:
        raise EngineError(f"{model.path}: its language model cannot be read ({exc})") from exc


@lru_cache(maxsize=4)
def language_models(model: RecModel) -> dict:
    """ISO 639-1 -> the language model of that language's lines alone, for the languages the
    recogniser carries one for (`manuscribe_charlm_en`; engines/char_lm.py)."""
    from manuscribe.engines.char_lm import LANGUAGE_KEY_PREFIX, CharNgramLM

    if model.path is None:
        return {}
    found = {}
    for key, value in read_metadata(model.path).items():
        if not key.startswith(LANGUAGE_KEY_PREFIX) or not value:
            continue
        try:
            found[key[len(LANGUAGE_KEY_PREFIX) :]] = CharNgramLM.from_metadata(value)
        except (ValueError, KeyError, TypeError) as exc:
            raise EngineError(f"{model.path}: its {key} model cannot be read ({exc})") from exc
    return found


def resolve(spec: str | None, storage=None, cache_dir: Path | None = None) -> RecModel:
    """Turn the `ocr_model` setting into a local file (or rapidocr's own model)."""
    spec = (spec or "default").strip()
    if spec == "default":
        return _identify(spec, MODELS_DIR / f"{DEFAULT_MODEL}.onnx")
    if spec == "ppocr":
        return RecModel(spec=spec, path=None, name="PP-OCRv6_rec_small", sha256="")
    if spec.startswith(STORAGE_PREFIX):
        return _identify(spec, fetch_from_storage(spec, storage, cache_dir))
    return _identify(spec, Path(spec).expanduser())


def fetch_from_storage(spec: str, storage, cache_dir: Path | None = None) -> Path:
    """`storage:<key>` -> a local file, fetched once into the worker's cache (named by key)."""
    key = spec[len(STORAGE_PREFIX) :]
    if storage is None:
        raise EngineError(f"model {spec!r}: no storage to fetch it from")
    cache = cache_dir or cache_root() / "models"
    target = cache / key.replace("/", "_")
    if not target.is_file():
        if not storage.exists(key):
            raise EngineError(f"model {spec!r}: key {key} is not in the storage")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
        tmp.write_bytes(storage.get(key))
        os.replace(tmp, target)
    return target


def file_identity(path: Path) -> str:
    """The sha256 of a model file (cached by size and mtime)."""
    stat = path.stat()
    return file_sha256(path, stat.st_size, stat.st_mtime)


def storage_key_for(path: Path) -> str:
    """Where `manuscribe submit` puts a local model so every worker can fetch it; the suffix
    stays, since it says which loader reads the file (.onnx, kraken's .mlmodel/.safetensors)."""
    return f"models/{file_identity(path)}{path.suffix.lower() or '.bin'}"
