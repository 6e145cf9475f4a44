"""Processes a test started, found through /proc: Ray's workers may start process groups of
their own, so killing a driver's group alone can leave trial workers writing results."""
from __future__ import annotations

import os
import signal


def process_tree(root: int) -> dict[int, str]:
    """pid -> program name of `root` and every process below it."""
    parents, names = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat_file:
                stat = stat_file.read()
        except OSError:
            continue
        name_end = stat.rindex(")")
        names[int(entry)] = stat[stat.index("(") + 1:name_end]
        parents[int(entry)] = int(stat[name_end + 2:].split()[1])
    tree, grew = {root}, True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= children
        grew = bool(children)
    return {pid: names.get(pid, "?") for pid in tree}


def kill_tree(root: int) -> None:
    """SIGKILL `root`'s process group and every process it started (found before the kill,
    while they are still its descendants); only processes this test started are touched."""
    for pid in process_tree(root):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.killpg(root, signal.SIGKILL)
    except ProcessLookupError:
        pass


def ctrl_c_as_from_a_terminal() -> None:
    """`preexec_fn` for a child the test will Ctrl-C: a background job of a non-interactive
    shell (e.g. a CI runner's `cmd &`) inherits SIGINT ignored, and so would the child."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
