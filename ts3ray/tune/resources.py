"""Ray sessions and per-trial resources.

A sweep either attaches to a running cluster (`--address`, or `RAY_ADDRESS` set) or starts
an embedded local Ray instance that it alone owns and shuts down at the end. The local
instance listens on 127.0.0.1 only, with Ray's token authentication on and the token file
readable by its owner only; an unreachable `--address` fails within seconds. Nothing here
ever stops Ray processes it did not start.

Before any trial is submitted, the per-trial request is compared with the nodes Ray knows
and, on a head node started by the cluster launcher, with the worker types the autoscaler
may still start (`~/ray_bootstrap_config.yaml`): a request that no node can hold (a GPU on a
cluster without GPUs, more CPUs than any node has) fails at once instead of leaving trials
pending forever.

`--gpus-per-trial` defaults to `auto`: when the cluster has (or can start) a GPU node, each
trial gets the GPU share of its architecture (`GPU_SHARE_BY_ARCH`, one table); otherwise
none. On an attached cluster that neither has a GPU node now nor says what its autoscaler may
start (KubeRay, a manual `ray start` cluster), `auto` cannot know and refuses: the user gives
a number.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from ts3ray.errors import Unreachable, UserError, one_line

# GPU share per trial by architecture for `--gpus-per-trial auto`: small nets leave a card
# mostly idle in one process (kernel launches and per-batch Python dominate), so several
# trials share it. Measured with benchmarks/bench_gpu.py on an NVIDIA H200 (total throughput
# of k concurrent trials as a multiple of one trial's, without / with MPS):
#   lenet_300_100: k=2 1.68x / 2.01x, k=4 3.28x / 3.52x, k=8 5.11x / 6.57x  -> 1/8 of a GPU
#   cifar_cnn:     k=2 1.15x / 1.52x, k=4 1.19x / 1.80x, k=8 1.19x / 1.85x  -> 1/4 of a GPU
# VGG/ResNet (11-20M parameters) and Inception-ResNet-v2 (54M, 299 px) are not measured yet:
# half a card and a whole card.
GPU_SHARE_BY_ARCH = {"lenet_300_100": 0.125, "cifar_cnn": 0.25, "vgg16": 0.5, "vgg19": 0.5,
                     "resnet18": 0.5, "inception_resnet_v2": 1.0}


@dataclass(frozen=True)
class TrialResources:
    """Logical resources of one trial; fractions pack several trials on one GPU."""

    cpu: float = 1.0
    gpu: float | None = 0.0  # None: auto (see resolve_gpus); else the largest request
    gpu_by_arch: tuple[tuple[str, float], ...] = ()  # auto on GPUs: the share per arch

    def __post_init__(self):
        if self.cpu <= 0:
            raise UserError(f"--cpus-per-trial={self.cpu:g} is not allowed: a number > 0")
        if self.gpu is None:
            return
        if self.gpu < 0:
            raise UserError(f"--gpus-per-trial={self.gpu:g} is not allowed: a number >= 0")
        if self.gpu > 1 and self.gpu != int(self.gpu):
            raise UserError(
                f"--gpus-per-trial={self.gpu:g} is not allowed: a fraction <= 1 or a whole number"
            )

    def as_tune(self, run_values: Callable[[dict], dict] | None = None):
        """What `tune.with_resources` takes: a dict, or a per-trial function of the config
        when the share depends on the trial's architecture."""
        if not self.gpu_by_arch:
            return {"cpu": self.cpu, "gpu": self.gpu}
        return ArchResources(self.cpu, dict(self.gpu_by_arch), run_values)


@dataclass(frozen=True)
class ArchResources:
    """Per-trial resources: the GPU share of the trial's architecture (picklable)."""

    cpu: float
    shares: dict[str, float]
    run_values: Callable[[dict], dict]

    def __call__(self, trial_config: dict[str, Any]) -> dict[str, float]:
        arch = self.run_values(trial_config)["arch"]
        return {"cpu": self.cpu, "gpu": self.shares.get(arch, max(self.shares.values()))}


# Written by `ray up` on the head node; `ray submit` runs sweep scripts there.
BOOTSTRAP_CONFIG = "~/ray_bootstrap_config.yaml"


def _worker_types(path: str) -> dict[str, dict]:
    """The autoscaler's worker types that may start ({} off a launcher head)."""
    from ts3ray.yaml_input import read_yaml_file

    file = Path(path).expanduser()
    if not file.is_file():
        return {}
    config = read_yaml_file(file) or {}
    types = config.get("available_node_types") or {}
    head = config.get("head_node_type")
    return {name: spec for name, spec in types.items()
            if name != head and (spec.get("max_workers") or 0) > 0}


def autoscaler_known(path: str = BOOTSTRAP_CONFIG) -> bool:
    """Whether this head was started by the cluster launcher (it says what may join)."""
    return Path(path).expanduser().is_file()


def startable_node_types(path: str = BOOTSTRAP_CONFIG) -> dict[str, dict[str, float]]:
    """Resources of the worker types the autoscaler may start ({} off a launcher head)."""
    return {name: dict(spec.get("resources") or {}) for name, spec in _worker_types(path).items()}


def startable_worker_limits(path: str = BOOTSTRAP_CONFIG) -> dict[str, int]:
    """How many nodes of each startable worker type the autoscaler may add."""
    return {name: int(spec["max_workers"]) for name, spec in _worker_types(path).items()}


def trials_per_node(request: TrialResources, resources: dict[str, float]) -> int:
    """How many trials of `request` one node with `resources` holds at once."""
    fits = [int(resources.get("CPU", 0) // request.cpu)]
    if request.gpu:
        fits.append(int(resources.get("GPU", 0) // request.gpu))
    return max(0, min(fits))


def concurrent_capacity(request: TrialResources, nodes: list[dict],
                        startable: dict[str, dict[str, float]] | None = None,
                        limits: dict[str, int] | None = None) -> int:
    """Trials the cluster can run at once: the live nodes, plus the nodes the autoscaler may
    still add (`limits` of each startable type, 1 where unknown)."""
    now = sum(trials_per_node(request, n["Resources"]) for n in nodes if n.get("Alive", True))
    later = sum((limits or {}).get(name, 1) * trials_per_node(request, resources)
                for name, resources in (startable or {}).items())
    return now + later


def resolve_gpus(request: TrialResources, nodes: list[dict],
                 startable: dict[str, dict[str, float]] | None = None, *,
                 archs: tuple[str, ...] = (), cannot_inspect: bool = False) -> TrialResources:
    """`auto` GPUs: the share of each architecture in `archs` where some node has (or may
    start with) a GPU, else 0; refused where the cluster cannot say (`cannot_inspect`)."""
    if request.gpu is not None:
        return request
    pools = [n["Resources"] for n in nodes if n.get("Alive", True)] + list((startable or {}).values())
    if not any(pool.get("GPU", 0) >= 1 for pool in pools):
        if cannot_inspect:
            raise UserError(
                "--gpus-per-trial auto cannot tell whether GPU workers will join this cluster "
                "(no node has a GPU now, and no autoscaler config at ~/ray_bootstrap_config.yaml "
                "lists what may start); pass --gpus-per-trial 0 to run on CPUs, or a share such "
                "as 0.25 (with --no-resource-check) to wait for GPU nodes")
        return dataclasses.replace(request, gpu=0.0)
    shares = tuple((arch, GPU_SHARE_BY_ARCH.get(arch, 1.0)) for arch in sorted(set(archs)))
    largest = max((share for _, share in shares), default=1.0)
    return dataclasses.replace(request, gpu=largest, gpu_by_arch=shares)


def _fits(request: TrialResources, resources: dict[str, float]) -> bool:
    return resources.get("CPU", 0) >= request.cpu and resources.get("GPU", 0) >= request.gpu


def _describe(nodes: list[dict]) -> str:
    cpus = sum(n["Resources"].get("CPU", 0) for n in nodes)
    gpus = sum(n["Resources"].get("GPU", 0) for n in nodes)
    return f"{len(nodes)} node(s), {cpus:g} CPU, {gpus:g} GPU"


def check_satisfiable(request: TrialResources, nodes: list[dict],
                      startable: dict[str, dict[str, float]] | None = None) -> None:
    """Raise UserError unless one live node, or a worker type the autoscaler may start, has
    `request.cpu` CPUs and `request.gpu` GPUs."""
    if any(_fits(request, resources) for resources in (startable or {}).values()):
        return  # the autoscaler starts such a node while trials are pending
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
    if not any(_fits(request, n["Resources"]) for n in alive):
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


LOOPBACK = "127.0.0.1"
CONNECT_TIMEOUT_S = 5.0
DEFAULT_PORTS = {"ray://": 10001, "": 6379}  # Ray Client server, GCS


def cluster_endpoint(address: str, label: str = "--address") -> tuple[str, int] | None:
    """(host, port) that `ray.init(address=...)` connects to; None for `auto`/`local`
    (found through this machine's session files). UserError when malformed."""
    text = address.strip()
    if text in ("auto", "local"):
        return None
    scheme = "ray://" if text.startswith("ray://") else ""
    rest = text[len(scheme):].rstrip("/")
    host, sep, port_text = rest.rpartition(":") if not rest.endswith("]") else ("", "", "")
    if not sep:
        host, port_text = rest, str(DEFAULT_PORTS[scheme])
    host = host.strip("[]")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UserError(f"{label}={address!r} is not allowed: HOST:PORT, ray://HOST:PORT or auto")
    return host, int(port_text)


def check_reachable(address: str, label: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Unreachable (exit 1) within `timeout` seconds unless a TCP connection to the cluster opens
    (ray.init would otherwise retry for minutes against an unreachable head)."""
    import socket

    endpoint = cluster_endpoint(address, label)
    if endpoint is None:
        return
    try:
        socket.create_connection(endpoint, timeout=timeout).close()
    except OSError as err:
        reason = "timed out" if isinstance(err, TimeoutError) else (err.strerror or str(err))
        raise Unreachable(f"{label}={address}: cannot reach {endpoint[0]}:{endpoint[1]} within "
                        f"{timeout:g} s ({reason}); check the address and that the head node "
                        "is running") from None


def auth_token_file() -> Path:
    """Where Ray keeps its authentication token (RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)."""
    return Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")


def private_token_file() -> bool:
    """Make sure the token file Ray will use is readable by its owner only.

    Ray 2.60 writes a new token with the process umask (mode 644). An absent file is
    created empty with mode 600 before Ray starts (Ray then fills it, keeping the mode);
    an existing one readable by others is tightened. Returns whether an empty file was
    created here (to be removed if Ray fails to start)."""
    if os.environ.get("RAY_AUTH_MODE", "token").lower() != "token" or os.environ.get("RAY_AUTH_TOKEN"):
        return False
    path = auth_token_file()
    created = False
    try:
        if not path.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            created = True
        elif path.stat().st_mode & 0o077:
            path.chmod(0o600)
    except OSError:
        pass  # Ray reports its own error if the token cannot be stored or read
    return created


@contextlib.contextmanager
def loopback_node() -> Iterator[None]:
    """Make a Ray started in this block choose 127.0.0.1 as its node address, so that the
    GCS, raylet, workers, driver and agents listen on loopback only.

    Ray picks the node address in `ray._private.services.get_node_ip_address`: the machine's
    outward address, unless `ray_constants.ENABLE_RAY_CLUSTER` is false (its default on
    macOS and Windows), when it is 127.0.0.1; Ray's gRPC servers then bind 127.0.0.1
    instead of every interface. The environment variable carries the choice to the processes
    Ray starts; both are restored when the block ends."""
    from ray._private import ray_constants

    name = ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR
    saved_env, saved_flag = os.environ.get(name), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[name] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved_env


def check_local_settings(settings: RaySettings) -> None:
    """The embedded instance's size: whole CPUs >= 1 and GPUs >= 0 (or Ray's detection)."""
    for flag, value, least in (("--num-cpus", settings.num_cpus, 1),
                               ("--num-gpus", settings.num_gpus, 0)):
        if value is not None and not least <= value <= 65536:
            raise UserError(f"{flag}={value} is not allowed: a whole number >= {least} "
                            "(default: what this machine has)")


# Ray's processes give up on a vanished GCS after this many seconds (Ray's default is 60):
# the agents of a local instance whose driver was killed exit this soon instead.
GCS_RECONNECT_TIMEOUT_S = 10


def _start_local(settings: RaySettings) -> None:
    import ray

    check_local_settings(settings)
    created_token = private_token_file()
    # Ray's "token authentication is enabled" warning: the line printed below says it
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.ERROR)
    try:
        ray.init(address="local", num_cpus=settings.num_cpus, num_gpus=settings.num_gpus,
                 include_dashboard=False, logging_level=logging.WARNING,  # no start-up INFO
                 _system_config={"gcs_rpc_server_reconnect_timeout_s": GCS_RECONNECT_TIMEOUT_S})
    except BaseException:
        if created_token and auth_token_file().stat().st_size == 0:
            auth_token_file().unlink(missing_ok=True)
        raise
    private_token_file()  # a token file Ray (re)wrote with a looser mode
    node_ip = ray.util.get_node_ip_address()
    auth = "on" if os.environ.get("RAY_AUTH_MODE", "").lower() == "token" else "off"
    print(f"ts3ray: local Ray listens on {node_ip} only (token authentication {auth})",
          file=sys.stderr, flush=True)


def _attach(settings: RaySettings) -> None:
    import ray

    label = "--address" if settings.address else "RAY_ADDRESS"
    address = settings.address or os.environ["RAY_ADDRESS"]
    check_reachable(address, label)
    try:
        ray.init(address=settings.address, log_to_driver=True)
    except ConnectionError as err:
        raise Unreachable(f"{label}={address}: {one_line(str(err), 200)}") from None


@contextlib.contextmanager
def own_sigterm_handler() -> Iterator[None]:
    """`ray.init` replaces SIGTERM's handler with `sys.exit(15)` (exit status 15, and no
    one line): the handler that was there before (the CLI's: exit 143) is put back."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def ray_session(settings: RaySettings) -> Iterator[None]:
    """Use the Ray of this process if there is one, else attach or start a local one.

    A local instance listens on 127.0.0.1 only (see `loopback_node`) and keeps Ray's token
    authentication on, with the token file private; its agents exit within seconds if the
    driver is killed (GCS_RECONNECT_TIMEOUT_S). Attaching to an unreachable address fails
    within CONNECT_TIMEOUT_S. Only an instance started here is shut down here
    (never `ray stop`).
    """
    import ray

    if ray.is_initialized():  # e.g. a test's shared local instance
        yield
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    if settings.attaches:
        with own_sigterm_handler():
            _attach(settings)
        try:
            yield
        finally:
            ray.shutdown()
        return
    with loopback_node():
        with own_sigterm_handler():
            _start_local(settings)
        try:
            yield
        finally:
            ray.shutdown()
