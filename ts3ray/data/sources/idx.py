"""IDX files (the MNIST format): big-endian header, then raw uint8 values.

Header: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions d,
then d big-endian int32 sizes. Plain or gzip-compressed files are both read.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ts3ray.errors import DataMissingError

UBYTE = 0x08
MAX_HEADER = 4 + 4 * 255


def _header(buf: bytes, where: str, hint: str) -> tuple[tuple[int, ...], int]:
    """(shape, header length in bytes) of the IDX data starting ``buf``."""
    if len(buf) < 4 or buf[0] != 0 or buf[1] != 0 or buf[2] != UBYTE:
        raise DataMissingError(f"{where} is not an unsigned-byte IDX file; {hint}")
    length = 4 + 4 * buf[3]
    if len(buf) < length:
        raise DataMissingError(f"{where} is truncated (incomplete IDX header); {hint}")
    shape = tuple(int(s) for s in np.frombuffer(buf, dtype=">i4", count=buf[3], offset=4))
    return shape, length


def _check_length(where: str, shape: tuple[int, ...], body: int, hint: str) -> None:
    expected = int(np.prod(shape, dtype=np.int64))
    if body != expected:
        problem = "truncated" if body < expected else "longer than its header says"
        raise DataMissingError(
            f"{where} is {problem} (header {shape} needs {expected} bytes, found {body}); {hint}"
        )


def parse_idx(raw: bytes, where: str, hint: str) -> np.ndarray:
    """The array stored in IDX bytes; DataMissingError if the header or length is wrong."""
    shape, length = _header(raw, where, hint)
    _check_length(where, shape, len(raw) - length, hint)
    return np.frombuffer(raw, dtype=np.uint8, offset=length).reshape(shape)


def read_idx(path: Path, hint: str) -> np.ndarray:
    """Read a plain or ``.gz`` IDX file into a numpy uint8 array (no per-sample objects)."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except FileNotFoundError:
        raise DataMissingError(f"{path} is missing; {hint}") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise DataMissingError(f"{path} is truncated or not gzip ({err}); {hint}") from None
    except OSError as err:
        raise DataMissingError(f"{path} cannot be read ({err.strerror or err}); {hint}") from None
    return parse_idx(raw, str(path), hint)


def check_idx(path: Path, hint: str) -> None:
    """Cheap check: the file exists and, if plain, its size matches its IDX header."""
    path = Path(path)
    if not path.is_file():
        raise DataMissingError(f"{path} is missing; {hint}")
    if path.suffix == ".gz":  # size unknown without decompressing
        return
    try:
        with open(path, "rb") as f:
            head = f.read(MAX_HEADER)
    except OSError as err:
        raise DataMissingError(f"{path} cannot be read ({err.strerror or err}); {hint}") from None
    shape, length = _header(head, str(path), hint)
    _check_length(str(path), shape, path.stat().st_size - length, hint)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as a plain (or ``.gz``) IDX file."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, UBYTE, array.ndim]) + np.asarray(array.shape, dtype=">i4").tobytes()
    data = header + array.tobytes()
    Path(path).write_bytes(gzip.compress(data) if Path(path).suffix == ".gz" else data)
