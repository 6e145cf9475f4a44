"""The ``ts3ray`` command line: each sub-command lives in its own module.

Modules are imported lazily so that ``ts3ray table`` does not pay for importing Ray or
torch. Each module provides ``add_arguments(parser)`` and ``main(args) -> int``.

Every way out is one line on stderr: a :class:`UserError` exits 2, an operating-system
failure (full disk, permission denied, ...) exits 1, Ctrl-C exits 130 and SIGTERM 143;
``finally`` blocks run on all of them, so locks and temporary files are cleaned up.
``--debug`` (anywhere on the line) or ``TS3RAY_DEBUG=1`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import re
import signal
import sys
import threading
import time
import traceback
from typing import Callable, Iterator

from ts3ray.errors import RESUME_ATTRIBUTE, Terminated, UserError, one_line

# sub-command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("ts3ray.run_cli", "one lottery run (Algorithm 2) of TS3-Net or a competitor, no Ray"),
    "sweep": ("ts3ray.tune.cli", "a Ray Tune sweep: sensitivity | sparsity | grid | search | compare"),
    "table": ("ts3ray.results.cli_table", "a table from Parquet results"),
    "plot": ("ts3ray.results.cli_plot", "a figure from Parquet results"),
    "results": ("ts3ray.results.cli_results", "results utilities (info: provenance; compact)"),
    "ticket": ("ts3ray.results.cli_ticket", "lottery tickets kept by runs and sweeps: list, export"),
    "data": ("ts3ray.data.cli", "dataset utilities (offline fetch)"),
    "cluster": ("ts3ray.cluster", "cluster file utilities (check)"),
}
DEBUG_FLAG, DEBUG_ENV = "--debug", "TS3RAY_DEBUG"
EXIT_OS_ERROR, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 130, 143
TRACEBACK_HINT = f"(run with {DEBUG_FLAG} or {DEBUG_ENV}=1 for the traceback)"


KEY_VALUE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*=")  # a run key=value, e.g. lam=0.5


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one UserError line (not usage + error); sub-parsers too.
    key=value items may also follow the flags (`--out runs/a lam=0.5`): argparse takes a
    command's positional key=values in one stretch and would call later ones unrecognized."""

    def parse_args(self, args=None, namespace=None):
        parsed, extra = self.parse_known_args(args, namespace)
        if extra and hasattr(parsed, "overrides") and all(KEY_VALUE.match(a) for a in extra):
            parsed.overrides = [*(parsed.overrides or []), *extra]
        elif extra:
            self.error(f"unrecognized arguments: {' '.join(extra)}")
        return parsed

    def error(self, message: str):
        raise UserError(f"{message} (see {self.prog} --help)")


DESCRIPTION = ("TS3-Net lottery tickets under noisy labels: one run, Ray Tune sweeps, the "
               "paper's tables and figures, the tickets themselves.")
EPILOG = """quick start (bundled digits data, a minute each):
  ts3ray run dataset=digits noise=sym noise_rate=0.4 --out runs/a
  ts3ray sweep search --num-samples 8 rounds=2
  ts3ray table pareto ray_results/search-quick
  ts3ray ticket export ray_results/search-quick --pareto --out pick.safetensors
  ts3ray run ticket=pick.safetensors --out runs/pick
Python: import ts3ray; ts3ray.run(...), ts3ray.sweep(...), ts3ray.load(...)
`ts3ray COMMAND --help` for each command."""


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = OneLineParser(prog="ts3ray", description=DESCRIPTION, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(DEBUG_FLAG, action="store_true",
                        help=f"show tracebacks instead of one-line errors (also {DEBUG_ENV}=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        if name == wanted:  # only the chosen command's module is imported
            module = importlib.import_module(module_name)
            module.add_arguments(p)
            p.set_defaults(_main=module.main)
    return parser


def debug_requested(argv: list[str]) -> bool:
    return DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


def describe_os_error(err: OSError) -> str:
    """`No space left on device: '/runs/a/.checkpoint.pt.tmp'` and what to do."""
    from ts3ray.errors import RemoteStorageError

    if isinstance(err, RemoteStorageError):  # its message is the whole line
        return one_line(str(err))
    what = err.strerror or type(err).__name__
    where = f": {err.filename!r}" if err.filename else ""
    if err.filename2:
        where += f" -> {err.filename2!r}"
    text = f"{what}{where}" if err.strerror else one_line(f"{what}: {err}")
    if err.errno in (28, 122):  # ENOSPC, EDQUOT
        text += "; free some space, then rerun (`ts3ray run` continues with --resume)"
    return text


TERM_GRACE_S = 3.0  # after SIGTERM, the longest the main thread may take to end cleanly
TERMINATED_LINE = "ts3ray: terminated (SIGTERM)"


class TermWatchdog:
    """Ends the process with 143 when a SIGTERM is not handled within `grace` seconds.

    Python runs a signal handler only when the main thread is back in the interpreter; a
    main thread blocked inside a C call (a remote filesystem call retrying, a Ray call) would
    otherwise ignore SIGTERM for as long as the call lasts. The C-level handler also writes
    the signal's number to the wakeup fd (`signal.set_wakeup_fd`), which this thread reads at
    once; if the process still runs `grace` seconds later it says the one line and calls
    `os._exit(143)`. `held()` keeps it from cutting a write that must finish (a checkpoint's
    files, run_cli.signals_deferred); a hard exit is what a SIGKILL would do, which every
    ts3ray folder survives (storage.write_atomic; a sweep resumes from its saved state)."""

    def __init__(self, grace: float = TERM_GRACE_S):
        self.grace = grace
        self.holds = 0
        self.said = threading.Event()  # the line was written (by the main thread or here)
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._previous_fd = -1

    def start(self) -> "TermWatchdog":
        self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        threading.Thread(target=self._watch, name="ts3ray-sigterm-watchdog", daemon=True).start()
        return self

    def stop(self) -> None:
        with contextlib.suppress(ValueError):
            signal.set_wakeup_fd(self._previous_fd)
        with contextlib.suppress(OSError):
            os.close(self._write)  # ends _watch (it closes the read end)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.holds += 1
        try:
            yield
        finally:
            self.holds -= 1

    def _watch(self) -> None:
        try:
            while True:
                data = os.read(self._read, 64)
                if not data:
                    return
                if self._previous_fd != -1:  # whoever listened before still hears it
                    with contextlib.suppress(OSError):
                        os.write(self._previous_fd, data)
                if signal.SIGTERM in data:
                    break
            deadline = time.monotonic() + self.grace
            while time.monotonic() < deadline or self.holds:
                time.sleep(0.05)
            if not self.said.is_set():
                os.write(2, f"{TERMINATED_LINE}\n".encode())
            os._exit(EXIT_TERMINATED)
        finally:
            with contextlib.suppress(OSError):
                os.close(self._read)


_watchdog: TermWatchdog | None = None


@contextlib.contextmanager
def watchdog_held() -> Iterator[None]:
    """No hard exit on SIGTERM inside this block (it then ends `grace` s after the block)."""
    with _watchdog.held() if _watchdog is not None else contextlib.nullcontext():
        yield


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` in the main thread (default: die without cleanup),
    and a :class:`TermWatchdog` ends the process if that cannot happen within its grace."""
    global _watchdog
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    outer, _watchdog = _watchdog, TermWatchdog().start()
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _watchdog.stop()
        _watchdog = outer


def _resume_hint(err: BaseException) -> str:
    command = getattr(err, RESUME_ATTRIBUTE, None)
    return f"; resume with: {command}" if command else ""


def _error(text: str) -> None:
    print(f"ts3ray: error: {one_line(text)}", file=sys.stderr, flush=True)


def run_guarded(action: Callable[[], int], *, debug: bool = False) -> int:
    """`action()`'s exit status, with every way out turned into one line (module docstring);
    `debug` prints the traceback above that line, with the same exit status. Also for other
    entry points (e.g. `sweeps/NAME.py`)."""
    with terminate_as_interrupt():
        try:
            return int(action() or 0)
        except UserError as err:
            if debug:
                traceback.print_exc()
            for line in getattr(err, "lines", None) or [str(err)]:  # a spec file: every error
                _error(line)
            return err.exit_code
        except Terminated as err:
            if debug:
                traceback.print_exc()
            if _watchdog is not None:
                _watchdog.said.set()
            print(f"{TERMINATED_LINE}{_resume_hint(err)}", file=sys.stderr, flush=True)
            return EXIT_TERMINATED
        except KeyboardInterrupt as err:  # SweepInterrupted too: Tune caught the Ctrl-C
            if debug:
                traceback.print_exc()
            print(f"ts3ray: interrupted (Ctrl-C){_resume_hint(err)}", file=sys.stderr, flush=True)
            return EXIT_INTERRUPTED
        except BrokenPipeError:  # `ts3ray table ... | head`: the reader left, nothing to say
            with contextlib.suppress(OSError):
                sys.stdout = open(os.devnull, "w")
            return EXIT_OS_ERROR
        except OSError as err:
            if debug:
                traceback.print_exc()
            _error(describe_os_error(err) + ("" if debug else f" {TRACEBACK_HINT}"))
            return EXIT_OS_ERROR
        except MemoryError:
            if debug:
                traceback.print_exc()
            _error("out of memory" + ("" if debug else f" {TRACEBACK_HINT}"))
            return EXIT_OS_ERROR


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else list(argv)
    debug = debug_requested(given)
    argv = [a for a in given if a != DEBUG_FLAG]

    def dispatch() -> int:
        args = build_parser(argv).parse_args(argv)
        args.command_argv = list(given)  # e.g. to start the same command again, detached
        return args._main(args)

    return run_guarded(dispatch, debug=debug)


if __name__ == "__main__":
    sys.exit(main())
