"""`ts3ray cluster check Dockerfile`: the project's image recipe, parsed without docker.

Rules (hadolint-style, only what breaks this project's image):
* every `${VAR}` / `$VAR` an instruction uses is declared before (ARG, or ENV in its stage);
* every `FROM base-${VARIANT}` stage exists for each variant the comments document, and
  no base image is `:latest` or untagged;
* every COPY source exists in the build context (the Dockerfile's folder);
* the ray version (`ARG RAY_VERSION`) equals the installed ray, and the image version label
  equals the installed ts3ray (the tags cluster/rayjob.yaml names).
"""
from __future__ import annotations

import re
from pathlib import Path

VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


def instructions(text: str) -> list[tuple[int, str, str]]:
    """(line number, INSTRUCTION, arguments) with continuations joined and comments dropped."""
    out, buffer, start = [], "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        word, _, rest = buffer.partition(" ")
        out.append((start, word.upper(), rest.strip()))
        buffer = ""
    return out


def docker_problems(path: str, installed: dict[str, str]) -> list[tuple[str, str]]:
    """(where, problem) pairs; `installed` holds the ray and ts3ray versions."""
    text = Path(path).read_text()
    context = Path(path).resolve().parent
    steps = instructions(text)
    out: list[tuple[str, str]] = []
    if not steps or steps[0][1] not in ("ARG", "FROM"):
        out.append(("line 1", "a Dockerfile starts with ARG or FROM"))
    global_args: dict[str, str] = {}
    stage_vars: dict[str, str] = {}
    stages: list[str] = []
    in_stage = False
    for number, word, args in steps:
        where = f"line {number}"
        known = {**global_args, **stage_vars}
        uses = VARIABLE.findall(args) if word not in ("RUN",) else []
        if word == "FROM":
            uses = VARIABLE.findall(args)
            undefined = [v for v in uses if v not in global_args]
        else:
            undefined = [v for v in uses if v not in known]
        for name in undefined:
            out.append((where, f"{word} uses ${name}, declared by no ARG/ENV before it"))
        if word == "ARG":
            name, _, default = args.partition("=")
            (stage_vars if in_stage else global_args)[name.strip()] = default.strip()
        elif word == "ENV":
            for item in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", args):
                stage_vars[item] = ""
        elif word == "FROM":
            in_stage, stage_vars = True, {}
            image, _, alias = args.partition(" AS ")
            image = image.split()[0]
            if "${" not in image and not image.startswith("base-"):
                if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
                    out.append((where, f"FROM {image}: pin a tag (not latest)"))
            if alias:
                stages.append(alias.strip())
            if image.startswith("base-${"):
                variable = VARIABLE.findall(image)[0]
                wanted = {f"base-{v}" for v in variants(text, variable, global_args)}
                for missing in sorted(wanted - set(stages)):
                    out.append((where, f"FROM {image}: no stage {missing} for {variable}"))
        elif word == "COPY":
            parts = [p for p in args.split() if not p.startswith("--")]
            for source in parts[:-1]:
                if not (context / source).exists():
                    out.append((where, f"COPY {source}: not in the build context {context}"))
    for name, version, what in (("RAY_VERSION", installed.get("ray"), "ray"),):
        declared = global_args.get(name)
        if version and declared != version:
            out.append(("ARG RAY_VERSION", f"{declared}: must equal the installed {what} {version}"))
    label = re.search(r'org\.opencontainers\.image\.version="([^"]+)"', text)
    if installed.get("ts3ray") and (not label or label.group(1) != installed["ts3ray"]):
        out.append(("LABEL", f"org.opencontainers.image.version must be the installed ts3ray "
                             f"{installed['ts3ray']} (cluster/rayjob.yaml's image tag)"))
    return out


def variants(text: str, variable: str, args: dict[str, str]) -> set[str]:
    """The values of `variable` the file documents (`--build-arg VARIANT=cuda`) and its default."""
    found = set(re.findall(rf"--build-arg {variable}=([\w.-]+)", text))
    if args.get(variable):
        found.add(args[variable])
    return found
