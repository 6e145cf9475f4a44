"""Cut the vendored subset of KubeRay's RayJob CRD schema (ts3ray/schemas/).

    git show v1.7.0:ray-operator/config/crd/bases/ray.io_rayjobs.yaml > ray.io_rayjobs.yaml
    python cluster/schema/vendor_kuberay.py ray.io_rayjobs.yaml v1.7.0

Kept: the RayJob `spec`, its `rayClusterSpec`, the head group and the worker groups with every
field name, type, enum and `required` list, unknown keys refused (additionalProperties false,
as `kubectl apply --validate=strict` does for a structural CRD); pod templates and other
deep objects are kept as `type: object` (Kubernetes validates those). KubeRay validates
`submissionMode` in its operator (ray-operator/apis/ray/v1/rayjob_types.go), not in the CRD;
its four values are added as an enum here.
"""
from __future__ import annotations

import json
import sys

import yaml

DEEP = ("properties", "items", "additionalProperties")
KEEP_BELOW = {("spec",), ("spec", "rayClusterSpec"), ("spec", "rayClusterSpec", "headGroupSpec"),
              ("spec", "rayClusterSpec", "workerGroupSpecs"), ("spec", "submitterConfig")}
SUBMISSION_MODES = ["K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"]


def cut(node: dict, path: tuple[str, ...]) -> dict:
    out = {k: node[k] for k in ("type", "enum", "required", "format") if k in node}
    if node.get("x-kubernetes-int-or-string"):
        out = {"type": ["integer", "string"]}
    if path in KEEP_BELOW and "properties" in node:
        out["properties"] = {k: cut(v, path + (k,)) for k, v in node["properties"].items()}
        out["additionalProperties"] = False
    elif path in KEEP_BELOW and "items" in node:
        out["items"] = cut(node["items"], path)
    elif isinstance(node.get("additionalProperties"), dict):  # maps: rayStartParams, labels
        out["additionalProperties"] = {k: v for k, v in node["additionalProperties"].items()
                                       if k == "type"}
    return out


def main(source: str, version: str) -> None:
    crd = yaml.safe_load(open(source))
    v1 = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    spec = cut(v1["schema"]["openAPIV3Schema"]["properties"]["spec"], ("spec",))
    spec["properties"]["submissionMode"]["enum"] = SUBMISSION_MODES
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": f"KubeRay {version} RayJob (ray.io/v1), a subset of ray.io_rayjobs.yaml",
        "x-kuberay-version": version,
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {"apiVersion": {"enum": ["ray.io/v1"]}, "kind": {"enum": ["RayJob"]},
                       "metadata": {"type": "object"}, "spec": spec},
    }
    json.dump(schema, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main(*sys.argv[1:3])
