"""User-facing errors: one line naming the key, the value and what is allowed.

The CLI prints ``ts3ray: error: <message>`` for any :class:`UserError` and exits with
status 2, before any output file is written.
"""


class UserError(Exception):
    """A problem the user can fix (bad value, missing file, impossible request)."""

    exit_code = 2


class ConfigError(UserError, ValueError):
    """A configuration value is not allowed."""

    def __init__(self, key: str, value, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r} is not allowed: {allowed}")


class DataMissingError(UserError, FileNotFoundError):
    """A dataset file is missing or truncated; the message says how to obtain it."""
