"""A trial worker's exit without a stray traceback.

When Tune ends a trial, Ray kills its actor and the raylet then sends the worker process
SIGTERM (and SIGKILL 200 ms later) while that process is already shutting down. Ray's worker
handler turns the SIGTERM into ``SystemExit`` wherever the main thread is; when that is inside
a garbage-collector callback (a ``WeakSet`` entry dying, a ``__del__``), Python cannot raise it
and prints "Exception ignored in ... SystemExit: 1" through ``sys.unraisablehook`` into the
sweep's output. Fused trials, with their larger torch state, hit it in most sweeps.

Nothing is lost there: the process is exiting anyway. So the hook below drops exactly that
case, a ``SystemExit`` raised by a function named ``sigterm_handler`` (Ray's), and hands every
other unraisable exception to the hook it replaced.
"""

from __future__ import annotations

import sys
from types import TracebackType

SIGTERM_HANDLER = "sigterm_handler"  # ray/_private/worker.py: Worker.main_loop's handler


def raised_by_sigterm_handler(exc_type, tb: TracebackType | None) -> bool:
    if exc_type is None or not issubclass(exc_type, SystemExit):
        return False
    while tb is not None:
        if tb.tb_frame.f_code.co_name == SIGTERM_HANDLER:
            return True
        tb = tb.tb_next
    return False


def install_quiet_sigterm_exit() -> None:
    """Idempotent; call it in the worker process (any thread)."""
    previous = sys.unraisablehook
    if getattr(previous, "ts3ray_quiet_sigterm", False):
        return

    def hook(unraisable) -> None:
        if raised_by_sigterm_handler(unraisable.exc_type, unraisable.exc_traceback):
            return  # the worker is being shut down by its raylet; see the module docstring
        previous(unraisable)

    hook.ts3ray_quiet_sigterm = True
    sys.unraisablehook = hook
