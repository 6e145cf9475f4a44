"""Project rules for KubeRay `RayJob` manifests (`ts3ray cluster check cluster/rayjob.yaml`).

A RayJob runs the sweep's driver inside the Ray cluster it creates, so the sweep survives the
submitter's disconnect. The rules catch what would waste a GPU cluster or lose results:

* ``manifest``: `apiVersion: ray.io/v1`, `kind: RayJob`, a `metadata.name`, a `spec.entrypoint`
  that runs a ts3ray sweep, and `spec.rayClusterSpec` with a head group and worker groups.
* ``gpu_worker``: a worker group whose containers ask for an integer `nvidia.com/gpu` >= 1 and
  that may scale above zero (`maxReplicas` >= 1).
* ``images``: every container names an image (it must carry ts3ray: `ray job` does not install
  it); the `rayVersion` equals the installed ray.
* ``explicit_gpus``: the entrypoint passes `--gpus-per-trial N` (`auto` refuses on a cluster
  whose GPU workers scale from zero: it cannot see them).
* ``shared_storage``: `TS3RAY_STORAGE` or `--storage` set to a URI or an absolute path.
* ``private_dashboard``: the head's `dashboard-host` is not 0.0.0.0 or ::.
* ``submission``: a submitter that can reach the job server: with the dashboard on the head's
  loopback, only `submissionMode: SidecarMode` (the submitter is a container of the head pod
  and talks to 127.0.0.1; KubeRay >= 1.5) does; K8sJobMode's submitter pod and HTTPMode's
  operator come over the pod network. SidecarMode's own rules (KubeRay's validation.go): no
  clusterSelector, submitterPodTemplate or submitterConfig; head restartPolicy Never or unset.
* ``shutdown``: `shutdownAfterJobFinishes: true`, so the GPUs stop with the sweep.
* ``image_tag``: the images are the ones the project's Dockerfile builds for this ts3ray
  (`.../ts3ray:<version>` or `:<version>-cuda`).
* ``crd_schema``: the fields of RayJob, RayCluster spec, head and worker groups against the
  vendored subset of KubeRay's CRD schema (ts3ray/schemas/, KubeRay v1.7.0): unknown keys,
  wrong types, missing required fields.
* ``placeholders`` (every cluster file): no value left as a placeholder (CHANGE-ME...,
  REGISTRY, BUCKET, <NAME>).
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

SWEEP_ENTRYPOINT = re.compile(r"(ts3ray(\.cli)?\s+sweep\s|sweeps/\w+\.py)")
EXPLICIT_GPUS = re.compile(r"--gpus-per-trial[=\s]+(?!auto\b)\S+")
STORAGE = re.compile(r"(?:TS3RAY_STORAGE\W+|--storage[=\s]+)['\"]?([^\s'\"]+)")
OPEN_HOSTS = ("0.0.0.0", "::")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
KUBERAY_SCHEMA = Path(__file__).parent / "schemas" / "kuberay-v1.7.0-rayjob.json"
PLACEHOLDER = re.compile(r"CHANGE-ME[\w.-]*|\bREGISTRY\b|\bBUCKET\b|<[A-Z][A-Z0-9_-]*>")


@lru_cache(maxsize=1)
def kuberay_schema() -> dict:
    return json.loads(KUBERAY_SCHEMA.read_text())


def _path(parts) -> str:
    return ".".join(str(p) for p in parts)


def crd_problems(config: dict) -> list[tuple[str, str]]:
    """Each validation error against the vendored KubeRay CRD subset, one line each."""
    from jsonschema import Draft7Validator

    schema = kuberay_schema()
    version = schema["x-kuberay-version"]
    out = []
    for error in Draft7Validator(schema).iter_errors(config):
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = sorted(error.schema.get("properties", {}))
            for key in error.instance:
                if key not in known:
                    out.append((_path([*error.absolute_path, key]),
                                f"unknown field {key!r} of KubeRay {version}'s RayJob schema "
                                f"(known: {', '.join(known)})"))
            continue
        if _path(error.absolute_path) in ("apiVersion", "kind"):
            continue  # rayjob_problems words these itself
        out.append((_path(error.absolute_path) or "(top level)",
                    f"{error.message[:160]} (KubeRay {version} RayJob schema)"))
    return sorted(out)


def placeholder_problems(config: Any, path: tuple = ()) -> list[tuple[str, str]]:
    """(key path, problem) for every string value that is still a placeholder."""
    out = []
    if isinstance(config, dict):
        for key, value in config.items():
            out += placeholder_problems(value, (*path, key))
    elif isinstance(config, list):
        for i, value in enumerate(config):
            out += placeholder_problems(value, (*path, i))
    elif isinstance(config, str):
        found = sorted(set(PLACEHOLDER.findall(config)))
        if found:
            out.append((_path(path) or "(top level)",
                        f"placeholder {', '.join(found)} left in; replace it with your own value "
                        "before applying (registry, bucket, ...)"))
    return out


def is_rayjob(config: Any) -> bool:
    return isinstance(config, dict) and config.get("kind") == "RayJob"


def _map(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _containers(group: dict) -> list[dict]:
    spec = _map(_map(_map(group).get("template")).get("spec"))
    return [c for c in _list(spec.get("containers")) if isinstance(c, dict)]


def _gpus(container: dict) -> Any:
    return _map(_map(container.get("resources")).get("limits")).get("nvidia.com/gpu")


def count_problems(prefix: str, group: dict, low: str, high: str,
                   also: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """Worker counts of one group (KubeRay replicas/minReplicas/maxReplicas, the autoscaler's
    min_workers/max_workers): whole numbers >= 0, `low` <= each of `also` <= `high`."""
    out, given = [], {}
    for key in (low, *also, high):
        if key not in group:
            continue
        value = group[key]
        if isinstance(value, bool) or not isinstance(value, int):
            continue  # the schema reports a count that is not an integer
        if value < 0:
            out.append((f"{prefix}{key}", f"{value} is not allowed: a whole number >= 0"))
        else:
            given[key] = value
    for key in also + (high,):
        if low in given and key in given and given[key] < given[low]:
            out.append((f"{prefix}{key}", f"{given[key]} is smaller than {low}={given[low]}"))
    for key in also:
        if high in given and key in given and given[key] > given[high]:
            out.append((f"{prefix}{key}", f"{given[key]} is larger than {high}={given[high]}"))
    return out


def rayjob_problems(config: dict, installed_ray: str | None,
                    installed_ts3ray: str | None = None) -> list[tuple[str, str]]:
    """(key path, problem) pairs for a RayJob manifest."""
    out = crd_problems(config)
    spec = _map(config.get("spec"))
    cluster = _map(spec.get("rayClusterSpec"))
    head = _map(cluster.get("headGroupSpec"))
    workers = [w for w in _list(cluster.get("workerGroupSpecs")) if isinstance(w, dict)]
    entry = str(spec.get("entrypoint") or "")
    if config.get("apiVersion") != "ray.io/v1":
        out.append(("apiVersion", f"{config.get('apiVersion')!r}: KubeRay's RayJob is ray.io/v1"))
    if not _map(config.get("metadata")).get("name"):
        out.append(("metadata.name", "missing: the job needs a name"))
    if not SWEEP_ENTRYPOINT.search(entry):
        out.append(("spec.entrypoint", "does not run a ts3ray sweep (python -m ts3ray.cli sweep "
                                       "NAME ... or python sweeps/NAME.py ...)"))
    if not head or not workers:
        out.append(("spec.rayClusterSpec", "needs a headGroupSpec and workerGroupSpecs"))
    gpu_groups = [w for w in workers if any(isinstance(_gpus(c), int) and _gpus(c) >= 1
                                           for c in _containers(w))
                  and int(w.get("maxReplicas") or 0) >= 1]
    for i, group in enumerate(workers):
        out += count_problems(f"spec.rayClusterSpec.workerGroupSpecs.{i}.", group,
                              "minReplicas", "maxReplicas", also=("replicas",))
    if workers and not gpu_groups:
        out.append(("spec.rayClusterSpec.workerGroupSpecs", "no group asks for an integer "
                    "nvidia.com/gpu >= 1 in its container limits with maxReplicas >= 1"))
    for where, group in [("headGroupSpec", head)] + [(f"workerGroupSpecs.{i}", w)
                                                     for i, w in enumerate(workers)]:
        for j, container in enumerate(_containers(group)):
            if not container.get("image"):
                out.append((f"spec.rayClusterSpec.{where}.template.spec.containers.{j}.image",
                            "missing: an image with ts3ray installed"))
    version = str(cluster.get("rayVersion") or "")
    if installed_ray and version != installed_ray:
        out.append(("spec.rayClusterSpec.rayVersion",
                    f"{version or 'missing'}: must equal the installed ray {installed_ray}"))
    if SWEEP_ENTRYPOINT.search(entry) and not EXPLICIT_GPUS.search(entry):
        out.append(("spec.entrypoint", "give --gpus-per-trial N: `auto` cannot see GPU workers "
                                       "that scale from zero and refuses"))
    text = entry + "\n" + str(spec.get("runtimeEnvYAML") or "")
    places = [m.group(1) for m in STORAGE.finditer(text)]
    if not any("://" in p or p.startswith("/") for p in places):
        out.append(("spec", "set TS3RAY_STORAGE (runtimeEnvYAML env_vars) or --storage to a URI "
                            "(s3://...) or an absolute shared path: workers write the results"))
    host = str(_map(head.get("rayStartParams")).get("dashboard-host", ""))
    if host in OPEN_HOSTS:
        out.append(("spec.rayClusterSpec.headGroupSpec.rayStartParams.dashboard-host",
                    f"{host}: the dashboard must not listen on every interface; use "
                    "127.0.0.1 and kubectl port-forward"))
    out += submission_problems(spec, head, host)
    if installed_ts3ray:
        for where, group in [("headGroupSpec", head)] + [(f"workerGroupSpecs.{i}", w)
                                                         for i, w in enumerate(workers)]:
            for j, container in enumerate(_containers(group)):
                image = str(container.get("image") or "")
                tag = image.rsplit("/", 1)[-1]
                if image and tag not in (f"ts3ray:{installed_ts3ray}", f"ts3ray:{installed_ts3ray}-cuda"):
                    out.append((f"spec.rayClusterSpec.{where}.template.spec.containers.{j}.image",
                                f"{image}: the Dockerfile builds ts3ray:{installed_ts3ray} (CPU) "
                                f"and ts3ray:{installed_ts3ray}-cuda; name one of them"))
    if spec.get("shutdownAfterJobFinishes") is not True:
        out.append(("spec.shutdownAfterJobFinishes", "set true: otherwise the GPU cluster "
                                                     "outlives the sweep"))
    return out


def submission_problems(spec: dict, head: dict, host: str) -> list[tuple[str, str]]:
    """Can the job's submitter reach the job server? (module docstring: ``submission``)"""
    mode = str(spec.get("submissionMode") or "K8sJobMode")  # KubeRay's default
    out = []
    if mode not in ("K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"):
        return out  # the schema's enum says so
    if mode != "SidecarMode" and (host in LOOPBACK or not host):
        out.append(("spec.submissionMode",
                    f"{mode}: its submitter (a separate pod, or the operator) cannot reach a "
                    f"dashboard bound to {host or '127.0.0.1 (the default here)'}; use "
                    "SidecarMode (the submitter runs in the head pod, on localhost)"))
    if mode == "SidecarMode":
        for key in ("clusterSelector", "submitterPodTemplate", "submitterConfig"):
            if key in spec:
                out.append((f"spec.{key}", "not supported with submissionMode SidecarMode "
                                           "(KubeRay refuses the RayJob)"))
        policy = _map(_map(head.get("template")).get("spec")).get("restartPolicy")
        if policy not in (None, "Never"):
            out.append(("spec.rayClusterSpec.headGroupSpec.template.spec.restartPolicy",
                        f"{policy}: must be Never or unset with SidecarMode (KubeRay refuses it)"))
    return out
