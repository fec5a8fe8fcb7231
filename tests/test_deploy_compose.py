"""docker-compose.yml, .env.example and the storage-init script (offline, and on SeaweedFS)."""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import uuid

import pytest

from tests.deploy_helpers import (
    COMPOSE_FILE,
    DESIGN_ENV,
    ENV_EXAMPLE,
    LONG_RUNNING,
    ONE_SHOT,
    REQUIRED_SECRETS,
    ROOT,
    WORKERS,
    duration_seconds,
    parse_env_file,
    run_compose,
)
from tests.services import services  # noqa: F401  (session fixture: real SeaweedFS)

# ---------------------------------------------------------------------------------------------
# docker-compose
# ---------------------------------------------------------------------------------------------


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
