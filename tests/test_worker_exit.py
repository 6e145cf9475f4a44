"""The trial worker's unraisable hook: Ray's SIGTERM-at-exit is silent, everything else is not."""

import gc
import sys

from ts3ray.tune.worker_exit import install_quiet_sigterm_exit


def sigterm_handler(signum=15, frame=None):  # same name as Ray's Worker.main_loop handler
    raise SystemExit(1)


class DiesWith:
    def __init__(self, action):
        self.action = action

    def __del__(self):
        self.action()


def plain_exit():
    raise SystemExit(1)


def broken():
    raise ValueError("a real bug in a finaliser")


def test_only_rays_sigterm_exit_is_dropped(monkeypatch):
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u.exc_type))
    install_quiet_sigterm_exit()
    install_quiet_sigterm_exit()  # idempotent: wrapping twice would still pass one of each
    for action in (sigterm_handler, broken, plain_exit):
        DiesWith(action)  # dropped at once: __del__ raises, Python calls unraisablehook
        gc.collect()
    assert seen == [ValueError, SystemExit]
