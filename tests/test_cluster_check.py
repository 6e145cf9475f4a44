"""`ts3ray cluster check`: the shipped cluster files pass; broken variants fail with one clear line.

Broken files are derived from the real cluster/gpu.yaml (or local.yaml) by editing the
loaded mapping and dumping it to tmp_path, so every test changes exactly one thing.
"""
from __future__ import annotations

import copy
import importlib.metadata
from pathlib import Path

import pytest
import yaml

from ts3ray.cli import main
from ts3ray.cluster import load_ray_schema, ray_package_dir

CLUSTER_DIR = Path(__file__).resolve().parents[1] / "cluster"
CLUSTER_FILES = sorted(CLUSTER_DIR.glob("*.yaml"))


def run_check(capsys, *paths) -> tuple[int, list[str]]:
    code = main(["cluster", "check", *map(str, paths)])
    return code, capsys.readouterr().out.splitlines()


PLACEHOLDERS = {"CHANGE-ME-registry": "ghcr.io/you", "CHANGE-ME-ts3ray-bucket": "your-bucket"}


def filled(text: str) -> str:
    """A shipped file with its placeholders replaced, as its user does before applying it."""
    for placeholder, value in PLACEHOLDERS.items():
        text = text.replace(placeholder, value)
    return text


def load(name: str) -> dict:
    return yaml.safe_load(filled((CLUSTER_DIR / name).read_text()))


def write(tmp_path: Path, config: dict, name: str = "gpu.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def without_commands(config: dict, key: str, needle: str) -> dict:
    config[key] = [c for c in config[key] if needle not in c]
    return config


def test_shipped_cluster_files_exist():
    assert {p.name for p in CLUSTER_FILES} >= {"gpu.yaml", "local.yaml"}


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=lambda p: p.name)
def test_shipped_cluster_file_passes_once_its_placeholders_are_filled(capsys, path, tmp_path):
    mine = tmp_path / path.name
    mine.write_text(filled(path.read_text()))
    code, lines = run_check(capsys, mine)
    assert (code, lines) == (0, [f"{mine}: OK"])


def test_placeholders_left_in_are_flagged_one_line_each(capsys):
    code, lines = run_check(capsys, CLUSTER_DIR / "rayjob.yaml", CLUSTER_DIR / "gpu.yaml")
    assert code == 2 and all("placeholder CHANGE-ME-" in line for line in lines)
    assert [line.split(": ")[1] for line in lines] == [
        "spec.entrypoint", "spec.runtimeEnvYAML",
        "spec.rayClusterSpec.headGroupSpec.template.spec.containers.0.image",
        "spec.rayClusterSpec.workerGroupSpecs.0.template.spec.containers.0.image",
        "setup_commands.2"]


def test_gpu_yaml_pins_the_installed_versions():
    setup = " ".join(load("gpu.yaml")["setup_commands"])
    ts3ray_version = importlib.metadata.version("ts3ray")
    assert f"ts3ray-{ts3ray_version}-py3-none-any.whl" in setup
    assert f'"ray[default]=={importlib.metadata.version("ray")}"' in setup


def test_schema_is_the_one_ray_up_uses():
    schema = load_ray_schema()
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert (ray_package_dir() / "autoscaler" / "ray-schema.json").is_file()
    # ray up validates against this file (ray.autoscaler._private.util.validate_config).
    assert schema["required"] == ["cluster_name", "provider"]


def _unknown_top_key(c):
    c["max_worker"] = 3


def _missing_provider(c):
    del c["provider"]


def _fractional_gpu(c):
    c["available_node_types"]["gpu_worker"]["resources"]["GPU"] = 0.5


def _no_ts3ray_install(c):
    c["setup_commands"] = [x for x in c["setup_commands"] if "ts3ray-0" not in x]


def _override_drops_install(c):
    c["available_node_types"]["gpu_spot"]["worker_setup_commands"] = ["echo only this"]


def _no_gpu_worker(c):
    for name in ("gpu_worker", "gpu_spot"):
        del c["available_node_types"][name]["resources"]["GPU"]


def _gpu_workers_cannot_launch(c):
    for name in ("gpu_worker", "gpu_spot"):
        c["available_node_types"][name]["max_workers"] = 0


def _no_storage(c):
    without_commands(c, "setup_commands", "TS3RAY_STORAGE")


def _home_dir_storage(c):
    c["setup_commands"] = [x.replace("s3://your-bucket/ts3ray", "~/results")
                           for x in c["setup_commands"]]


def _open_dashboard(c):
    c["head_start_ray_commands"] = [x.replace("127.0.0.1", "0.0.0.0")
                                    for x in c["head_start_ray_commands"]]


def _default_start_commands(c):
    del c["head_start_ray_commands"]


def _unknown_head_type(c):
    c["head_node_type"] = "cpu_head"


def _min_workers_over_max(c):
    c["available_node_types"]["gpu_spot"]["min_workers"] = 9
    c["available_node_types"]["gpu_spot"]["max_workers"] = 9  # the type alone is consistent


def _old_wheel_pin(c):
    c["setup_commands"] = [x.replace("ts3ray-0.1.0-", "ts3ray-0.0.9-") for x in c["setup_commands"]]


def _commands_not_a_list(c):
    c["worker_setup_commands"] = {"pip": "install"}


def _driver_not_attached(c):
    c["head_setup_commands"] = [x for x in c["head_setup_commands"] if "RAY_ADDRESS" not in x]


# edit of gpu.yaml -> (path the line names, the start of its message)
BROKEN_GPU = {
    "unknown top-level key": (_unknown_top_key, "max_worker",
                              "unknown top-level key 'max_worker' (did you mean 'max_workers'?)"),
    "missing provider": (_missing_provider, None, "'provider' is a required property"),
    "fractional node resources": (_fractional_gpu, "available_node_types.gpu_worker.resources.GPU",
                                  "0.5 is fractional: node resources are whole units"),
    "no ts3ray set-up": (_no_ts3ray_install, "setup_commands",
                         "no set-up command pip-installs ts3ray"),
    "node type set-up without ts3ray": (
        _override_drops_install, "available_node_types.gpu_spot.worker_setup_commands",
        "the node type 'gpu_spot' runs these set-up commands, which do not pip-install ts3ray"),
    "no GPU worker": (_no_gpu_worker, "available_node_types",
                      "no worker node type with an integer resources.GPU >= 1"),
    "GPU workers capped at 0": (_gpu_workers_cannot_launch, "available_node_types",
                                "no worker node type with an integer resources.GPU >= 1"),
    "no shared storage": (_no_storage, "setup_commands",
                          "workers can join but TS3RAY_STORAGE is never set"),
    "per-node storage": (_home_dir_storage, "setup_commands",
                         "TS3RAY_STORAGE='~/results' is not shared storage"),
    "dashboard on 0.0.0.0": (_open_dashboard, "head_start_ray_commands",
                             "binds the dashboard to 0.0.0.0"),
    "cloud default start commands": (_default_start_commands, "head_start_ray_commands",
                                     "not set, so ray's aws defaults apply, which bind the "
                                     "dashboard to 0.0.0.0"),
    "unknown head type": (_unknown_head_type, "head_node_type",
                          "'cpu_head' is not one of available_node_types (head, gpu_worker, gpu_spot)"),
    "min_workers over max_workers": (_min_workers_over_max, "max_workers",
                                     "8 is smaller than the sum of the node types' min_workers (9)"),
    "stale wheel pin": (_old_wheel_pin, "setup_commands",
                        f"pins ts3ray 0.0.9 but {importlib.metadata.version('ts3ray')} is installed"),
    "driver not attached": (_driver_not_attached, "head_setup_commands",
                            "the head never exports RAY_ADDRESS"),
    "schema type error": (_commands_not_a_list, "worker_setup_commands",
                          "{'pip': 'install'} is not of type 'array'"),
}


@pytest.mark.parametrize("case", BROKEN_GPU, ids=str)
def test_broken_gpu_file_fails_with_one_clear_line(capsys, tmp_path, case):
    edit, key_path, message = BROKEN_GPU[case]
    config = copy.deepcopy(load("gpu.yaml"))
    edit(config)
    path = write(tmp_path, config)
    code, lines = run_check(capsys, path)
    prefix = f"{path}: {key_path}: {message}" if key_path else f"{path}: {message}"
    assert code == 2
    assert [line for line in lines if line.startswith(prefix)] == [lines[0]], lines
    assert len(lines) == 1, lines


def test_fractional_resources_are_reported_once(capsys, tmp_path):
    config = load("gpu.yaml")
    config["available_node_types"]["gpu_spot"]["resources"] = {"CPU": 8, "GPU": 0.25}
    code, lines = run_check(capsys, write(tmp_path, config))
    assert code == 2
    assert lines == [f"{tmp_path / 'gpu.yaml'}: available_node_types.gpu_spot.resources.GPU: "
                     "0.25 is fractional: node resources are whole units; ask for a fraction "
                     "per trial instead (e.g. --gpus-per-trial 0.25)"]


def test_unknown_nested_key_names_its_path(capsys, tmp_path):
    config = load("gpu.yaml")
    config["available_node_types"]["gpu_worker"]["resource"] = {"GPU": 1}
    config["zz_extra"] = True
    code, lines = run_check(capsys, write(tmp_path, config))
    path = tmp_path / "gpu.yaml"
    assert code == 2
    assert lines[0] == (f"{path}: available_node_types.gpu_worker.resource: "
                        "unknown key 'resource' (did you mean 'resources'?)")
    assert lines[1].startswith(f"{path}: zz_extra: unknown top-level key 'zz_extra' (allowed: auth, ")
    assert len(lines) == 2


def test_yaml_syntax_error_is_one_line(capsys, tmp_path):
    path = tmp_path / "gpu.yaml"
    path.write_text("cluster_name: x\nsetup_commands: [a, b\nprovider: {type: aws}\n")
    code, lines = run_check(capsys, path)
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith(f"{path}: YAML error: line 3, column ")


def test_non_mapping_file_and_missing_file(capsys, tmp_path):
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    code, lines = run_check(capsys, listed, tmp_path / "absent.yaml")
    assert code == 2
    assert lines == [f"{listed}: the file holds a list, not a mapping of keys",
                     f"{tmp_path / 'absent.yaml'}: cannot read: No such file or directory"]


def test_good_and_bad_files_together(capsys, tmp_path):
    config = load("gpu.yaml")
    _missing_provider(config)
    bad = write(tmp_path, config)
    good = write(tmp_path, load("gpu.yaml"), "good.yaml")
    code, lines = run_check(capsys, good, bad)
    assert code == 2
    assert lines == [f"{good}: OK", f"{bad}: 'provider' is a required property"]


def test_local_cluster_with_workers_needs_shared_storage(capsys, tmp_path):
    config = load("local.yaml")
    config["provider"]["worker_ips"] = ["10.0.0.2"]
    without_commands(config, "setup_commands", "TS3RAY_STORAGE")
    path = write(tmp_path, config, "local.yaml")
    code, lines = run_check(capsys, path)
    assert code == 2
    assert len(lines) == 1
    assert lines[0].startswith(f"{path}: setup_commands: workers can join but TS3RAY_STORAGE")


def test_single_machine_local_cluster_needs_no_shared_storage(capsys, tmp_path):
    config = load("local.yaml")
    without_commands(config, "setup_commands", "TS3RAY_STORAGE")
    code, lines = run_check(capsys, write(tmp_path, config, "local.yaml"))
    assert (code, lines) == (0, [f"{tmp_path / 'local.yaml'}: OK"])


def test_local_provider_rejects_node_types(capsys, tmp_path):
    config = load("local.yaml")
    config["head_node_type"] = "head"
    config["available_node_types"] = {"head": {"node_config": {}, "resources": {"CPU": 4}}}
    path = write(tmp_path, config, "local.yaml")
    code, lines = run_check(capsys, path)
    assert code == 2
    assert [line.split(": ")[1] for line in lines] == ["available_node_types", "head_node_type"]
    assert all("not allowed with the local provider" in line for line in lines)


def test_docker_image_with_ts3ray_counts_as_installed(capsys, tmp_path):
    config = load("gpu.yaml")
    _no_ts3ray_install(config)
    config["docker"] = {"image": "ghcr.io/example/ts3ray:0.1.0-gpu"}
    code, lines = run_check(capsys, write(tmp_path, config))
    assert (code, lines) == (0, [f"{tmp_path / 'gpu.yaml'}: OK"])


LAUNCHER_FILES = [p for p in CLUSTER_FILES if p.name != "rayjob.yaml"]  # rayjob: KubeRay's


@pytest.mark.parametrize("path", LAUNCHER_FILES, ids=lambda p: p.name)
def test_ray_itself_accepts_shipped_files(path):
    # What `ray up` does before contacting the cloud: fill defaults, then validate.
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(yaml.safe_load(path.read_text())))


# -- KubeRay RayJob ------------------------------------------------------------------------

def _rayjob_variants():
    def edit(path, value):
        def change(config):
            keys = path.replace("nvidia.com/gpu", "nvidia\0").split(".")
            keys = [k.replace("nvidia\0", "nvidia.com/gpu") for k in keys]
            node = config
            for key in keys[:-1]:
                node = node[int(key)] if isinstance(node, list) else node[key]
            if value is None:
                node.pop(keys[-1])
            else:
                node[keys[-1]] = value
            return config
        return change

    gpu_limits = "spec.rayClusterSpec.workerGroupSpecs.0.template.spec.containers.0.resources.limits"
    return {
        "wrong api": (edit("apiVersion", "ray.io/v1alpha1"), "apiVersion: 'ray.io/v1alpha1'"),
        "no sweep": (edit("spec.entrypoint", "python train.py"), "does not run a ts3ray sweep"),
        "auto gpus": (edit("spec.entrypoint", "python -m ts3ray.cli sweep sensitivity "
                                              "--storage s3://b/x"), "give --gpus-per-trial N"),
        "no gpu group": (edit(f"{gpu_limits}.nvidia.com/gpu", None), "no group asks for"),
        "no storage": (lambda c: edit("spec.runtimeEnvYAML", "env_vars: {}")(
            edit("spec.entrypoint", "python -m ts3ray.cli sweep grid --gpus-per-trial 1")(c)),
            "set TS3RAY_STORAGE"),
        "open dashboard": (edit("spec.rayClusterSpec.headGroupSpec.rayStartParams.dashboard-host",
                                "0.0.0.0"), "must not listen on every interface"),
        "left running": (edit("spec.shutdownAfterJobFinishes", False), "set true"),
        "other ray": (edit("spec.rayClusterSpec.rayVersion", "2.9.0"), "must equal the installed"),
        "no image": (edit("spec.rayClusterSpec.headGroupSpec.template.spec.containers.0.image",
                          None), "missing: an image with ts3ray installed"),
        "default submitter": (edit("spec.submissionMode", None),
                              "K8sJobMode: its submitter (a separate pod, or the operator) cannot "
                              "reach a dashboard bound to 127.0.0.1"),
        "sidecar with submitter config": (edit("spec.submitterConfig", {"backoffLimit": 2}),
                                          "spec.submitterConfig: not supported with submissionMode "
                                          "SidecarMode"),
        "head restarts": (edit("spec.rayClusterSpec.headGroupSpec.template.spec.restartPolicy",
                               "Always"), "Always: must be Never or unset with SidecarMode"),
        "typo in a field": (lambda c: {**c, "spec": {**c["spec"], "shutdownAfterJobFinish": True}},
                            "spec.shutdownAfterJobFinish: unknown field 'shutdownAfterJobFinish' "
                            "of KubeRay v1.7.0's RayJob schema"),
        "wrong type": (edit("spec.rayClusterSpec.workerGroupSpecs.0.maxReplicas", "8"),
                       "spec.rayClusterSpec.workerGroupSpecs.0.maxReplicas: '8' is not of type "
                       "'integer' (KubeRay v1.7.0 RayJob schema)"),
        "missing group name": (edit("spec.rayClusterSpec.workerGroupSpecs.0.groupName", None),
                               "'groupName' is a required property"),
        "unknown mode": (edit("spec.submissionMode", "PodMode"), "'PodMode' is not one of"),
        "image not built here": (edit("spec.rayClusterSpec.workerGroupSpecs.0.template.spec."
                                      "containers.0.image", "ghcr.io/you/ts3ray:0.0.9"),
                                 "the Dockerfile builds ts3ray:"),
    }


@pytest.mark.parametrize("name", list(_rayjob_variants()))
def test_broken_rayjob_fails_with_one_line(capsys, tmp_path, name):
    change, message = _rayjob_variants()[name]
    path = write(tmp_path, change(copy.deepcopy(load("rayjob.yaml"))), "rayjob.yaml")
    code, lines = run_check(capsys, path)
    assert code == 2 and len(lines) == 1 and message in lines[0], lines


# -- Dockerfile (parsed without docker) -------------------------------------------------------

DOCKERFILE = CLUSTER_DIR.parent / "Dockerfile"


def test_the_dockerfile_builds_the_image_the_rayjob_names(capsys):
    code, lines = run_check(capsys, DOCKERFILE)
    assert (code, lines) == (0, [f"{DOCKERFILE}: OK"])
    from ts3ray.cluster_docker import instructions

    steps = instructions(DOCKERFILE.read_text())
    froms = [args for _, word, args in steps if word == "FROM"]
    assert froms == ["${BASE_cpu} AS base-cpu", "${BASE_cuda} AS base-cuda", "base-${VARIANT}"]
    text = DOCKERFILE.read_text()
    version = importlib.metadata.version("ts3ray")
    assert f"docker build -t ts3ray:{version}-cuda --build-arg VARIANT=cuda ." in text
    images = {c["image"] for g in [load("rayjob.yaml")["spec"]["rayClusterSpec"]["headGroupSpec"],
                                   *load("rayjob.yaml")["spec"]["rayClusterSpec"]["workerGroupSpecs"]]
              for c in g["template"]["spec"]["containers"]}
    assert images == {f"ghcr.io/you/ts3ray:{version}-cuda"}


def test_a_broken_dockerfile_fails_one_line_per_problem(capsys, tmp_path):
    text = DOCKERFILE.read_text()
    broken = (text.replace("ARG RAY_VERSION=2.60.0", "ARG RAY_VERSION=2.9.0")
              .replace("FROM ${BASE_cuda} AS base-cuda", "FROM ubuntu AS base-gpu")
              .replace("COPY --chown=ray:users sweeps ./sweeps", "COPY sweeps2 ./sweeps")
              .replace("ENV TORCH_INDEX=https://pypi.org/simple", "ENV X=${UNDECLARED}"))
    (tmp_path / "Dockerfile").write_text(broken)
    for name in ("pyproject.toml", "README.md", "ts3ray"):
        (tmp_path / name).mkdir() if name == "ts3ray" else (tmp_path / name).write_text("")
    code, lines = run_check(capsys, tmp_path / "Dockerfile")
    assert code == 2
    assert [line.split(": ", 1)[1] for line in lines] == [
        "line 17: FROM ubuntu: pin a tag (not latest)",
        "line 18: ENV uses $UNDECLARED, declared by no ARG/ENV before it",
        "line 20: FROM base-${VARIANT}: no stage base-cuda for VARIANT",
        "line 26: COPY sweeps2: not in the build context " + str(tmp_path),
        "ARG RAY_VERSION: 2.9.0: must equal the installed ray 2.60.0"]


@pytest.mark.parametrize("name, change, line", [
    ("rayjob.yaml", lambda c: c["spec"]["rayClusterSpec"]["workerGroupSpecs"][0].update(replicas=-2),
     "spec.rayClusterSpec.workerGroupSpecs.0.replicas: -2 is not allowed: a whole number >= 0"),
    ("rayjob.yaml", lambda c: c["spec"]["rayClusterSpec"]["workerGroupSpecs"][0].update(
        minReplicas=3, maxReplicas=2, replicas=None) or
        c["spec"]["rayClusterSpec"]["workerGroupSpecs"][0].pop("replicas"),
     "spec.rayClusterSpec.workerGroupSpecs.0.maxReplicas: 2 is smaller than minReplicas=3"),
    ("rayjob.yaml", lambda c: c["spec"]["rayClusterSpec"]["workerGroupSpecs"][0].update(replicas=9),
     "spec.rayClusterSpec.workerGroupSpecs.0.replicas: 9 is larger than maxReplicas=8"),
    ("gpu.yaml", lambda c: c["available_node_types"]["gpu_worker"].update(min_workers=-3),
     "available_node_types.gpu_worker.min_workers: -3 is not allowed: a whole number >= 0"),
    ("gpu.yaml", lambda c: c["available_node_types"]["gpu_worker"].update(min_workers=3,
                                                                         max_workers=2),
     "available_node_types.gpu_worker.max_workers: 2 is smaller than min_workers=3"),
])
def test_worker_counts_below_zero_or_out_of_order_are_refused(capsys, tmp_path, name, change,
                                                              line):
    config = load(name)
    change(config)
    path = write(tmp_path, config, name)
    code, lines = run_check(capsys, path)
    assert (code, lines) == (2, [f"{path}: {line}"])
