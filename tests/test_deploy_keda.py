"""KEDA objects in infra/k8s/keda/, checked against KEDA's documented fields.

They are CRDs, so kubernetes-validate has no schema for them.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from tests.deploy_helpers import K8S_DOCS, by_kind

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
