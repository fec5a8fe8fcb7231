"""Kubernetes manifests in infra/k8s/ (validated with kubernetes-validate) and the KEDA objects."""

from __future__ import annotations

import copy
import subprocess

import pytest
import yaml

from tests.deploy_helpers import (
    CORE_DOCS,
    ENV_EXAMPLE,
    K8S_DIR,
    K8S_DOCS,
    K8S_VERSIONS,
    ROOT,
    WORKERS,
    by_kind,
    parse_env_file,
    require_module,
    require_tool,
)

# ---------------------------------------------------------------------------------------------
# Kubernetes
# ---------------------------------------------------------------------------------------------


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
    kubectl = require_tool("kubectl", "apt-get install kubectl (on the project's machine image)")
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
