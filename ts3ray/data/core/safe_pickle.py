"""Read CIFAR's python pickles without running code from the file.

``pickle.load`` calls whatever the file names (``os.system``, ``builtins.eval``, ...), so a
crafted ``data_batch_1`` under ``data_root`` would run code in every process that loads the
dataset. :func:`load_restricted` admits only what the official batches hold: the builtin
containers (dict, list, tuple, bytes, str, int, float, bool, None, which need no global),
numpy arrays of numeric dtypes and the latin-1 bytes of Python-3 protocol-2 pickles. Any
other global ends the read with :class:`RefusedContent` (an ``UnpicklingError``) before it
is called.

Each admitted callable is wrapped so that its arguments are checked too: an array is
rebuilt only as a plain ``numpy.ndarray`` of shape (0,) (what numpy's own pickles do before
filling it from the file's bytes), dtypes with Python objects are refused, and ``_codecs``
decodes latin-1 only.
"""
from __future__ import annotations

import codecs
import io
import pickle
from typing import Any, BinaryIO

import numpy as np

_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1, np.uint8))[0]  # numpy's own, any version
_FROMBUFFER = np.zeros(1, np.uint8).__reduce_ex__(5)[0]


class RefusedContent(pickle.UnpicklingError):
    """The file asks for something a data pickle never needs (a global, an object dtype)."""


def _refuse(what: str) -> None:
    raise RefusedContent(what)


class _NdarrayName:
    """Stands for ``numpy.ndarray`` in a file: accepted as an argument, never called."""

    def __call__(self, *args, **kwargs):
        _refuse("numpy.ndarray called directly")


NDARRAY = _NdarrayName()


def _reconstruct(subtype, shape, dtype):
    if subtype is not NDARRAY or not isinstance(shape, tuple) or shape != (0,):
        _refuse(f"array rebuilt as {subtype!r} of shape {shape!r}")
    return _RECONSTRUCT(np.ndarray, shape, dtype)


def _dtype(spec, align=False, copy=False):
    if not isinstance(spec, str):
        _refuse(f"dtype from {type(spec).__name__}")
    dtype = np.dtype(spec, align=bool(align), copy=bool(copy))
    if dtype.hasobject:
        _refuse(f"dtype {spec!r} holds Python objects")
    return dtype


def _frombuffer(buffer, dtype, shape, order):
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        _refuse(f"array of dtype {dtype!r}")
    return _FROMBUFFER(buffer, dtype, shape, order)


def _latin1(text, encoding="utf-8", errors="strict"):
    if not isinstance(text, str) or codecs.lookup(encoding).name != "iso8859-1":
        _refuse(f"_codecs.encode with {encoding!r}")
    return text.encode("latin-1", errors)


# (module, name) as written by Python 2 and 3, numpy 1 and 2 -> the checked callable
ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): NDARRAY,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _latin1,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler whose ``find_class`` knows only :data:`ALLOWED`."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise RefusedContent(
                f"refused global {module}.{name} (only numpy arrays and builtin containers "
                "are read)") from None

    def persistent_load(self, pid):
        _refuse("persistent ids are not read")


def load_restricted(file: BinaryIO, *, encoding: str = "bytes") -> Any:
    """Like ``pickle.load(file, encoding=...)`` but runs nothing the file names."""
    return RestrictedUnpickler(file, encoding=encoding).load()


def loads_restricted(data: bytes, *, encoding: str = "bytes") -> Any:
    return load_restricted(io.BytesIO(data), encoding=encoding)
