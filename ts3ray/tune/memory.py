"""The sweep driver hands freed heap memory back to the operating system.

A sweep driver allocates and frees many short-lived objects per trial (Tune's results, JSON of
its experiment state, Ray's messages); glibc keeps the freed pages in its arenas, so the
driver's RSS climbs with the number of trials although the live heap barely grows (Python's
traced heap: about 5 KB per trial). `malloc_trim(0)` returns them. Measured on this machine
(benchmarks/bench_sweep_scale.py's ts3ray role, 1,000 trials, RSS growth per trial while
trials run): 44 KB without, 15 KB when trimmed every 5 s (`MALLOC_ARENA_MAX=2` instead: 25 KB).
Where there is no glibc (macOS, musl) this does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import time

TRIM_EVERY_S = 5.0


@functools.lru_cache(maxsize=1)
def malloc_trim():
    """glibc's `malloc_trim`, or None (looked up once; not kept on objects that Tune pickles
    into its tuner.pkl, as ctypes pointers cannot be pickled)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


class FreedMemoryReturner:
    """Call `due()` often; at most every `every_s` seconds it trims the heap. Returns whether
    it did (False where the C library has no malloc_trim)."""

    def __init__(self, every_s: float = TRIM_EVERY_S):
        self.every_s = every_s
        self.last = time.monotonic()

    def due(self) -> bool:
        now = time.monotonic()
        trim = malloc_trim()
        if trim is None or now - self.last < self.every_s:
            return False
        self.last = now
        trim(0)
        return True
