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
* ``shutdown``: `shutdownAfterJobFinishes: true`, so the GPUs stop with the sweep.
"""
from __future__ import annotations

import re
from typing import Any

SWEEP_ENTRYPOINT = re.compile(r"(ts3ray(\.cli)?\s+sweep\s|sweeps/\w+\.py)")
EXPLICIT_GPUS = re.compile(r"--gpus-per-trial[=\s]+(?!auto\b)\S+")
STORAGE = re.compile(r"(?:TS3RAY_STORAGE\W+|--storage[=\s]+)['\"]?([^\s'\"]+)")
OPEN_HOSTS = ("0.0.0.0", "::")


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


def rayjob_problems(config: dict, installed_ray: str | None) -> list[tuple[str, str]]:
    """(key path, problem) pairs for a RayJob manifest."""
    out = []
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
    if spec.get("shutdownAfterJobFinishes") is not True:
        out.append(("spec.shutdownAfterJobFinishes", "set true: otherwise the GPU cluster "
                                                     "outlives the sweep"))
    return out
