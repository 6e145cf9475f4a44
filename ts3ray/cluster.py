"""``ts3ray cluster check FILE...``: check Ray cluster-launcher files before ``ray up``.

Each file is validated against the JSON schema that ``ray up`` uses
(``ray/autoscaler/ray-schema.json`` in the installed ray wheel, draft-07) and against the
project's own rules (see ``RULES``). One line per problem, ``FILE: <path>: <problem>``;
``FILE: OK`` for a good file. Exit status 2 when any file has a problem.

Project rules:

* ``gpu_worker``: a file whose name contains "gpu", or any cloud provider, needs a worker
  node type with ``resources.GPU`` an integer >= 1 that may launch (max_workers != 0).
  The local provider is exempt: ray detects the machines' GPUs itself.
* ``installs_ts3ray``: ``ray submit`` copies only the sweep script, so every node's set-up
  must pip-install ts3ray (or run a docker image whose name says ts3ray). A node type's own
  ``worker_setup_commands`` replace the global set-up for that type, so it is checked per node.
* ``shared_storage``: when workers can join (max_workers > 0, worker_ips non-empty, or a
  worker type with max_workers > 0) trials write results and checkpoints from the workers,
  so ``TS3RAY_STORAGE=`` must be set in some command, to a URI (s3://, gs://, ...) or an
  absolute path on a shared mount; ``~`` and relative paths are per-node and rejected.
* ``whole_resources``: node resources are whole units (fractions are per trial).
* ``private_dashboard``: on any provider (local included) no command may bind the dashboard
  to 0.0.0.0 (or ::); on a cloud provider head_start_ray_commands must be set (the
  launcher's cloud defaults bind 0.0.0.0).
* ``node_types``: ray's own cross-checks (head_node_type among available_node_types, sum of
  min_workers <= max_workers; local provider: head_ip and worker_ips, no node types).
* ``pinned_versions``: versions pinned in commands (ts3ray wheel, ray==) match the installed
  ones, so the cluster runs the code being checked.
"""
from __future__ import annotations

import argparse
import difflib
import importlib.metadata
import importlib.util
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

from ts3ray.cluster_rayjob import (count_problems, is_rayjob, placeholder_problems,
                                   rayjob_problems)
from ts3ray.yaml_input import YamlInputError, read_yaml_file

CLOUD_PROVIDERS = ("aws", "gcp", "azure", "aliyun", "vsphere")
COMMAND_KEYS = (
    "initialization_commands", "setup_commands", "head_setup_commands",
    "worker_setup_commands", "head_start_ray_commands", "worker_start_ray_commands",
)
INSTALLS_TS3RAY = re.compile(r"\bpip3?\s+install\b.*\bts3ray\b")
STORAGE_SETTING = re.compile(r"""TS3RAY_STORAGE=(?:'([^']*)'|"([^"]*)"|([^\s;&|'"]*))""")
URI_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
# every-interface hosts: 0.0.0.0 (and its short forms 0, 0.0, 0.0.0), ::, [::], *
OPEN_DASHBOARD = re.compile(
    r"--dashboard-host[=\s]+[\"']?(?:0(?:\.0){0,3}|::|\[::\]|\*)(?=$|[\s;&|\"'])")
MESSAGE_LIMIT = 200


@dataclass(frozen=True)
class Problem:
    """One finding: ``path`` is the dotted key path in the file ("" for the whole file)."""

    path: str
    message: str
    replaces_schema_error: bool = False  # a clearer wording of the schema's error on `path`

    def line(self, file: str) -> str:
        return f"{file}: {self.path}: {self.message}" if self.path else f"{file}: {self.message}"


# ---------------------------------------------------------------------------- ray's schema


def ray_package_dir() -> Path:
    """The installed ray package directory, found without importing ray."""
    spec = importlib.util.find_spec("ray")
    if spec is None or spec.origin is None:
        from ts3ray.errors import UserError

        raise UserError("ray is not installed: pip install 'ray[default]' to check cluster files")
    return Path(spec.origin).parent


@lru_cache(maxsize=1)
def load_ray_schema() -> dict:
    """The cluster-launcher JSON schema shipped in the ray wheel (what ``ray up`` validates)."""
    return json.loads((ray_package_dir() / "autoscaler" / "ray-schema.json").read_text())


def _format_path(parts: Iterable[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _unknown_keys(error) -> list[Problem]:
    """Rewrite an additionalProperties error into one line per unexpected key."""
    allowed = sorted(error.schema.get("properties", {}))
    patterns = [re.compile(p) for p in error.schema.get("patternProperties", {})]
    path = _format_path(error.absolute_path)
    where = "top-level key" if not path else "key"
    problems = []
    for key in error.instance:
        if key in allowed or any(p.search(str(key)) for p in patterns):
            continue
        close = difflib.get_close_matches(str(key), allowed, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"allowed: {', '.join(allowed)}"
        problems.append(Problem(_join(path, str(key)), f"unknown {where} {key!r} ({hint})"))
    return problems


def schema_problems(config: Any) -> list[Problem]:
    """Every draft-07 validation error against ray's schema, one Problem each."""
    from jsonschema import Draft7Validator

    problems: list[Problem] = []
    errors = Draft7Validator(load_ray_schema()).iter_errors(config)
    for error in errors:
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            problems.extend(_unknown_keys(error))
            continue
        message = error.message
        if len(message) > MESSAGE_LIMIT:
            message = message[: MESSAGE_LIMIT - 3] + "..."
        problems.append(Problem(_format_path(error.absolute_path), message))
    return sorted(problems, key=lambda p: p.path)


# --------------------------------------------------------------------- a defensive view


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _count(value: Any) -> int | None:
    """An integer count, or None when absent or malformed (the schema reports those)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class ClusterFile:
    """A parsed cluster file; accessors tolerate malformed parts (the schema reports them)."""

    name: str
    config: dict

    @property
    def provider(self) -> dict:
        return _mapping(self.config.get("provider"))

    @property
    def provider_type(self) -> str:
        return str(self.provider.get("type", ""))

    @property
    def is_cloud(self) -> bool:
        return self.provider_type in CLOUD_PROVIDERS

    @property
    def node_types(self) -> dict[str, dict]:
        types = _mapping(self.config.get("available_node_types"))
        return {name: _mapping(spec) for name, spec in types.items()}

    @property
    def worker_types(self) -> dict[str, dict]:
        head = self.config.get("head_node_type")
        return {name: spec for name, spec in self.node_types.items() if name != head}

    def commands(self, key: str) -> list[str]:
        return _strings(self.config.get(key))

    def all_commands(self) -> list[str]:
        found = [c for key in COMMAND_KEYS for c in self.commands(key)]
        for spec in self.node_types.values():
            for key in ("initialization_commands", "worker_setup_commands"):
                found += _strings(spec.get(key))
        docker = _mapping(self.config.get("docker"))
        for key in ("run_options", "head_run_options", "worker_run_options"):
            found += _strings(docker.get(key))
        return found

    def node_setups(self) -> dict[str, tuple[str, list[str]]]:
        """Node label -> (where its set-up comes from, the set-up commands it runs).

        Mirrors the launcher: head = setup + head_setup; a worker type's own
        worker_setup_commands replace setup + worker_setup for that type.
        """
        common = self.commands("setup_commands")
        shared_worker = ("setup_commands + worker_setup_commands",
                         common + self.commands("worker_setup_commands"))
        setups = {"head node": ("setup_commands + head_setup_commands",
                                common + self.commands("head_setup_commands"))}
        if not self.node_types:
            setups["worker nodes"] = shared_worker
        for name, spec in self.worker_types.items():
            if "worker_setup_commands" in spec:
                own = f"available_node_types.{name}.worker_setup_commands"
                setups[f"node type {name!r}"] = (own, _strings(spec["worker_setup_commands"]))
            else:
                setups[f"node type {name!r}"] = shared_worker
        return setups

    def docker_images(self) -> list[str]:
        docker = _mapping(self.config.get("docker"))
        images = [docker.get(k) for k in ("image", "head_image", "worker_image")]
        images += [_mapping(s.get("docker")).get("worker_image") for s in self.node_types.values()]
        return [i for i in images if isinstance(i, str)]

    def workers_can_join(self) -> bool:
        if (_count(self.config.get("max_workers")) or 0) > 0:
            return True
        worker_ips = self.provider.get("worker_ips")
        if isinstance(worker_ips, list) and worker_ips:
            return True
        return any((_count(s.get("max_workers")) or 0) > 0 for s in self.worker_types.values())


# ------------------------------------------------------------------------- project rules


def rule_gpu_worker(cf: ClusterFile) -> list[Problem]:
    wants_gpu = "gpu" in Path(cf.name).name.lower() or cf.is_cloud
    if not wants_gpu or cf.provider_type == "local":
        return []
    global_max = _count(cf.config.get("max_workers"))
    for spec in cf.worker_types.values():
        gpus = _count(_mapping(spec.get("resources")).get("GPU"))
        type_max = _count(spec.get("max_workers"))
        can_launch = (type_max if type_max is not None else global_max) != 0
        if gpus is not None and gpus >= 1 and can_launch:
            return []
    return [Problem("available_node_types",
                    "no worker node type with an integer resources.GPU >= 1 that may launch "
                    "(a GPU cluster needs one, e.g. resources: {CPU: 8, GPU: 1}, max_workers > 0)")]


def _installs_ts3ray(commands: list[str]) -> bool:
    return any(INSTALLS_TS3RAY.search(c) for c in commands)


def rule_installs_ts3ray(cf: ClusterFile) -> list[Problem]:
    if any("ts3ray" in image for image in cf.docker_images()):
        return []  # the image is declared to ship ts3ray
    setups = cf.node_setups()
    missing = {label: source for label, (source, cmds) in setups.items()
               if not _installs_ts3ray(cmds)}
    why = "`ray submit` copies only the script, so every node must pip-install ts3ray"
    if len(missing) == len(setups):
        return [Problem("setup_commands", f"no set-up command pip-installs ts3ray ({why}, "
                        "e.g. pip install ~/ts3ray-dist/ts3ray-VERSION-py3-none-any.whl)")]
    return [Problem(source, f"the {label} runs these set-up commands, which do not "
                    f"pip-install ts3ray ({why})") for label, source in missing.items()]


def _storage_values(commands: list[str]) -> list[str]:
    return ["".join(m.groups(default="")) for c in commands for m in STORAGE_SETTING.finditer(c)]


def _is_shared_location(value: str) -> bool:
    return bool(URI_SCHEME.match(value)) or value.startswith(("/", "$"))


def rule_shared_storage(cf: ClusterFile) -> list[Problem]:
    if not cf.workers_can_join():
        return []
    values = _storage_values(cf.all_commands())
    if not values:
        return [Problem("setup_commands",
                        "workers can join but TS3RAY_STORAGE is never set: trials write results "
                        "and checkpoints from the workers, so export it to an s3:// or gs:// URI "
                        "or a shared (NFS) path, e.g. "
                        "echo 'export TS3RAY_STORAGE=s3://bucket/ts3ray' >> ~/.bashrc")]
    return [Problem("setup_commands",
                    f"TS3RAY_STORAGE={value!r} is not shared storage: each node would keep its "
                    "own copy; use an s3:// or gs:// URI or an absolute path on a shared mount")
            for value in values if not _is_shared_location(value)]


def rule_whole_resources(cf: ClusterFile) -> list[Problem]:
    problems = []
    for name, spec in cf.node_types.items():
        for resource, amount in _mapping(spec.get("resources")).items():
            if isinstance(amount, float) and not amount.is_integer():
                problems.append(Problem(
                    f"available_node_types.{name}.resources.{resource}",
                    f"{amount} is fractional: node resources are whole units; ask for a "
                    "fraction per trial instead (e.g. --gpus-per-trial 0.25)",
                    replaces_schema_error=True))
    return problems


def _provider_default_head_start(provider_type: str) -> list[str]:
    """head_start_ray_commands of ray's defaults.yaml for this provider ([] if unknown)."""
    defaults = ray_package_dir() / "autoscaler" / provider_type / "defaults.yaml"
    if not provider_type.isidentifier() or not defaults.is_file():
        return []
    return _strings(_mapping(yaml.safe_load(defaults.read_text())).get("head_start_ray_commands"))


def rule_private_dashboard(cf: ClusterFile) -> list[Problem]:
    """No command may bind the dashboard to every interface, whatever the provider (a
    local cluster's machines are on a network too); on a cloud provider the start commands
    must be set, since the launcher's cloud defaults bind 0.0.0.0."""
    fix = ("anyone reaching port 8265 can submit jobs; use --dashboard-host=127.0.0.1 "
           "and `ray dashboard FILE` for an SSH tunnel")
    problems = [Problem(key, f"binds the dashboard to 0.0.0.0 ({fix})")
                for key in COMMAND_KEYS
                if any(OPEN_DASHBOARD.search(c) for c in cf.commands(key))]
    if cf.is_cloud and "head_start_ray_commands" not in cf.config:
        defaults = _provider_default_head_start(cf.provider_type)
        if any(OPEN_DASHBOARD.search(c) for c in defaults):
            problems.append(Problem("head_start_ray_commands",
                                    f"not set, so ray's {cf.provider_type} defaults apply, which "
                                    f"bind the dashboard to 0.0.0.0 ({fix})"))
    return problems


def rule_node_types(cf: ClusterFile) -> list[Problem]:
    config = cf.config
    if cf.provider_type == "local":
        problems = [Problem(f"provider.{key}", "required by the local provider")
                    for key in ("head_ip", "worker_ips") if key not in cf.provider]
        problems += [Problem(key, "not allowed with the local provider (ray detects each "
                             "machine's resources; `ray up` aborts)")
                     for key in ("available_node_types", "head_node_type") if key in config]
        return problems
    if "available_node_types" not in config:
        return []
    head = config.get("head_node_type")
    if head is None:
        return [Problem("head_node_type", "required when available_node_types is set")]
    if head not in cf.node_types:
        return [Problem("head_node_type", f"{head!r} is not one of available_node_types "
                        f"({', '.join(cf.node_types)})")]
    counts = [Problem(*p) for name, spec in cf.node_types.items()
              for p in count_problems(f"available_node_types.{name}.", spec, "min_workers",
                                      "max_workers")]
    counts += [Problem(*p) for p in count_problems("", config, "min_workers", "max_workers")]
    if counts:
        return counts
    total_min = sum(_count(s.get("min_workers")) or 0 for s in cf.node_types.values())
    global_max = _count(config.get("max_workers"))
    if global_max is not None and total_min > global_max:
        return [Problem("max_workers", f"{global_max} is smaller than the sum of the node "
                        f"types' min_workers ({total_min})")]
    return []


def installed_versions() -> dict[str, str]:
    """Package -> installed version, for the pins the cluster must match."""
    return {name: importlib.metadata.version(name) for name in ("ts3ray", "ray")}


# package -> (pattern whose groups capture a pinned version, how to fix a mismatch)
PINS = {
    "ts3ray": (re.compile(r"\bts3ray-([0-9][\w.+]*?)-py3-none-any\.whl|\bts3ray==([\w.+]+)"),
               "update the pin and rebuild the wheel: pip wheel --no-deps -w dist ."),
    "ray": (re.compile(r"\bray(?:\[[^\]]*\])?==([\w.+]+)"),
            "the cluster and the machine running `ray up` need the same ray version"),
}


def rule_pinned_versions(cf: ClusterFile) -> list[Problem]:
    versions = installed_versions()
    problems = []
    for package, (pattern, fix) in PINS.items():
        pinned = {v for c in cf.all_commands() for m in pattern.finditer(c) for v in m.groups() if v}
        for version in sorted(pinned - {versions[package]}):
            problems.append(Problem("setup_commands", f"pins {package} {version} but "
                                    f"{versions[package]} is installed here ({fix})"))
    return problems


def rule_driver_attaches(cf: ClusterFile) -> list[Problem]:
    """`ray submit` runs the sweep on the head; without RAY_ADDRESS (or `--address auto` in
    every submit) the sweep starts its own one-machine Ray and never uses the workers."""
    head = cf.commands("setup_commands") + cf.commands("head_setup_commands")
    if any("RAY_ADDRESS=" in c for c in head):
        return []
    return [Problem("head_setup_commands",
                    "the head never exports RAY_ADDRESS, so a sweep started by `ray submit` "
                    "would run on a private one-machine Ray: add "
                    "echo 'export RAY_ADDRESS=127.0.0.1:6379' >> ~/.ts3ray-env")]


RULES: dict[str, Callable[[ClusterFile], list[Problem]]] = {
    "gpu_worker": rule_gpu_worker,
    "installs_ts3ray": rule_installs_ts3ray,
    "shared_storage": rule_shared_storage,
    "whole_resources": rule_whole_resources,
    "private_dashboard": rule_private_dashboard,
    "node_types": rule_node_types,
    "pinned_versions": rule_pinned_versions,
    "driver_attaches": rule_driver_attaches,
}


# ----------------------------------------------------------------------------- checking


def check_config(name: str, config: Any) -> list[Problem]:
    """Schema problems then rule problems (a rewording rule drops the schema's line)."""
    if not isinstance(config, dict):
        return [Problem("", f"the file holds a {type(config).__name__}, not a mapping of keys")]
    cf = ClusterFile(name, config)
    ruled = [p for rule in RULES.values() for p in rule(cf)]
    ruled_paths = {p.path for p in ruled if p.replaces_schema_error}
    return [p for p in schema_problems(config) if p.path not in ruled_paths] + ruled


def check_file(path: str) -> list[str]:
    """Output lines for one file: ``FILE: OK`` or one ``FILE: ...`` line per problem."""
    if Path(path).name.startswith("Dockerfile"):  # the image recipe (cluster_docker.py)
        from ts3ray.cluster_docker import docker_problems

        if not Path(path).is_file():
            return [f"{path}: no such file"]
        found = [Problem(w, m) for w, m in docker_problems(path, installed_versions())]
        return [p.line(path) for p in found] or [f"{path}: OK"]
    try:
        config = read_yaml_file(path)  # bounded: size and alias expansion
    except YamlInputError as err:
        return [str(err)]
    placeholders = [Problem(where, what) for where, what in placeholder_problems(config)]
    if is_rayjob(config):  # a KubeRay manifest, not a cluster-launcher file
        versions = installed_versions()
        found = [Problem(where, what) for where, what in
                 rayjob_problems(config, versions.get("ray"), versions.get("ts3ray"))]
        return [p.line(path) for p in found + placeholders] or [f"{path}: OK"]
    problems = check_config(path, config) + placeholders
    return [p.line(path) for p in problems] or [f"{path}: OK"]


def _check_main(args: argparse.Namespace) -> int:
    failed = False
    for path in args.files:
        lines = check_file(path)
        failed = failed or lines != [f"{path}: OK"]
        print("\n".join(lines))
    return 2 if failed else 0


SUBCOMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
    "check": (_check_main, "validate cluster files: launcher YAML (ray's schema), KubeRay "
                           "RayJob (KubeRay v1.7.0 CRD subset), Dockerfile; rules, placeholders"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="cluster_command", metavar="ACTION", required=True)
    for name, (handler, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_cluster_main=handler)
    sub.choices["check"].add_argument("files", nargs="+", metavar="FILE",
                                      help="cluster files, e.g. cluster/gpu.yaml")


def main(args: argparse.Namespace) -> int:
    return args._cluster_main(args)
