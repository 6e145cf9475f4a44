"""Ray sessions and per-trial resources.

A sweep either attaches to a running cluster (`--address`, or `RAY_ADDRESS` set) or starts
an embedded local Ray instance that it alone owns and shuts down at the end. Nothing here
ever stops Ray processes it did not start.

Before any trial is submitted, the per-trial request is compared with the nodes Ray knows:
a request that no node can hold (a GPU on a cluster without GPUs, more CPUs than any node
has) fails at once instead of leaving trials pending forever.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Iterator

from ts3ray.errors import UserError


@dataclass(frozen=True)
class TrialResources:
    """Logical resources of one trial; fractions pack several trials on one GPU."""

    cpu: float = 1.0
    gpu: float = 0.0

    def __post_init__(self):
        if self.cpu <= 0:
            raise UserError(f"--cpus-per-trial={self.cpu:g} is not allowed: a number > 0")
        if self.gpu < 0:
            raise UserError(f"--gpus-per-trial={self.gpu:g} is not allowed: a number >= 0")
        if self.gpu > 1 and self.gpu != int(self.gpu):
            raise UserError(
                f"--gpus-per-trial={self.gpu:g} is not allowed: a fraction <= 1 or a whole number"
            )

    def as_tune(self) -> dict[str, float]:
        return {"cpu": self.cpu, "gpu": self.gpu}


def _describe(nodes: list[dict]) -> str:
    cpus = sum(n["Resources"].get("CPU", 0) for n in nodes)
    gpus = sum(n["Resources"].get("GPU", 0) for n in nodes)
    return f"{len(nodes)} node(s), {cpus:g} CPU, {gpus:g} GPU"


def check_satisfiable(request: TrialResources, nodes: list[dict]) -> None:
    """Raise UserError unless one live node has `request.cpu` CPUs and `request.gpu` GPUs."""
    alive = [n for n in nodes if n.get("Alive", True)]
    cluster = _describe(alive)
    most_gpus = max((n["Resources"].get("GPU", 0) for n in alive), default=0)
    most_cpus = max((n["Resources"].get("CPU", 0) for n in alive), default=0)
    if request.gpu > most_gpus:
        hint = ("no node has a GPU" if most_gpus == 0
                else f"the largest node has {most_gpus:g} GPU")
        fix = ("use --gpus-per-trial 0 or start Ray with GPUs (--num-gpus N for a local run)"
               if most_gpus == 0 else f"use --gpus-per-trial <= {most_gpus:g}")
        raise UserError(
            f"--gpus-per-trial={request.gpu:g} cannot be satisfied: {hint} (cluster: {cluster}); {fix}"
        )
    if request.cpu > most_cpus:
        raise UserError(
            f"--cpus-per-trial={request.cpu:g} cannot be satisfied: the largest node has "
            f"{most_cpus:g} CPU (cluster: {cluster}); use --cpus-per-trial <= {most_cpus:g}"
        )
    if not any(
        n["Resources"].get("CPU", 0) >= request.cpu and n["Resources"].get("GPU", 0) >= request.gpu
        for n in alive
    ):
        raise UserError(
            f"--cpus-per-trial={request.cpu:g} with --gpus-per-trial={request.gpu:g} cannot be "
            f"satisfied: no single node has both (cluster: {cluster})"
        )


@dataclass(frozen=True)
class RaySettings:
    """Where to run: an existing cluster (`address`) or an embedded local instance."""

    address: str | None = None
    num_cpus: int | None = None
    num_gpus: int | None = None

    @property
    def attaches(self) -> bool:
        return bool(self.address or os.environ.get("RAY_ADDRESS"))


@contextlib.contextmanager
def ray_session(settings: RaySettings) -> Iterator[None]:
    """Use the Ray of this process if there is one, else attach or start a local one.

    Only an instance started here is shut down here (never `ray stop`).
    """
    import ray

    if ray.is_initialized():  # e.g. a test's shared local instance
        yield
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    if settings.attaches:
        ray.init(address=settings.address, log_to_driver=True)
    else:
        ray.init(address="local", num_cpus=settings.num_cpus, num_gpus=settings.num_gpus,
                 include_dashboard=False)
    try:
        yield
    finally:
        ray.shutdown()
