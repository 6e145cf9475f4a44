"""User-facing errors: one line naming the key, the value and what is allowed.

The CLI prints ``ts3ray: error: <message>`` for any :class:`UserError` and exits with
status 2, before any output file is written. Messages pass through :func:`one_line`, so a
huge or multi-line value (a YAML bomb, a binary file) never floods the terminal.
"""

import sys

MESSAGE_LIMIT = 400  # characters of one error line


def warn(line: str) -> None:
    """``ts3ray: warning: <line>`` on stderr: something the user should know, not an error."""
    print(f"ts3ray: warning: {one_line(line)}", file=sys.stderr, flush=True)


class UserError(Exception):
    """A problem the user can fix (bad value, missing file, impossible request)."""

    exit_code = 2


class DamagedData(UserError):
    """A file that must be read is truncated, corrupt or unreadable: the command stops,
    having changed nothing, and exits 1 (like other failures of what is stored)."""

    exit_code = 1


class Unreachable(UserError):
    """A network endpoint (a cluster's --address) does not answer: an operating-system
    failure, not bad input, so exit 1 as for unreachable storage; still one line."""

    exit_code = 1


class ConfigError(UserError, ValueError):
    """A configuration value is not allowed."""

    def __init__(self, key: str, value, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={shorten(repr(value), 80)} is not allowed: {allowed}")

    def __reduce__(self):  # pickled back from a Ray worker: rebuilt from its three fields
        return type(self), (self.key, self.value, self.allowed)


class DataMissingError(UserError, FileNotFoundError):
    """A dataset file is missing or truncated; the message says how to obtain it."""


class DataFileError(UserError, ValueError):
    """A dataset's list file names a path outside the dataset folder, or a label outside the
    classes; the message names the list file, the line and the value (ts3ray/data/core/contained.py)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that every ``finally`` still runs."""


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C that Ray Tune caught itself: it stopped the trials and saved the experiment's
    state, then returned; the sweep is unfinished (exit 130, like any Ctrl-C)."""


# A KeyboardInterrupt (Terminated included) may carry `resume_with`: the command that
# continues what was interrupted; the CLI adds it to its one line.
RESUME_ATTRIBUTE = "resume_with"


class RemoteStorageError(OSError):
    """A remote filesystem call failed (network, credentials, timeout): exit 1, not 2."""


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """Whitespace (newlines included) collapsed to single spaces, then shortened."""
    return shorten(" ".join(str(text).split()), limit)
