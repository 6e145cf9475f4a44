"""How a run computes on its device: precision, memory format, compiled steps, determinism.

Four RunConfig fields, each recorded with the results (and part of the run id, since each can
change the last bits of the numbers):

* `precision` — `fp32` (default) or `bf16`: every forward pass of an epoch (training and
  evaluation) under `torch.autocast(dtype=bfloat16)`. Parameters, optimiser state and the
  masks stay fp32; autocast computes cross-entropy, softmax and log-softmax in fp32, so the
  per-sample losses that small-loss selection ranks (Eq. 2), the entropy term (Eq. 4) and
  the relabel threshold (Eq. 6) see fp32 values: selection sizes, masks and exact zeros are
  those of fp32 training. bf16 needs no loss scaling (fp32's exponent range).
* `channels_last` — conv nets' weights and inputs in NHWC (a forward pre-hook converts each
  batch), the layout Tensor Cores read fastest; a no-op for fully connected nets.
* `compile` — `none` (default), or a `torch.compile` mode (`default`, `reduce-overhead`:
  CUDA graphs, `max-autotune`) applied in place (`nn.Module.compile`), so state dicts, masks
  and pruning see the same parameters. CUDA graphs want static shapes: with `reduce-overhead`
  the training batches drop the last, smaller batch of each epoch (a different subset each
  epoch, since the order is reshuffled; see data/batches.py). Off CUDA, `reduce-overhead`
  compiles as `default` and says so in one line (compile_options): CUDA graphs need CUDA.
* `deterministic` — `torch.use_deterministic_algorithms(True, warn_only=True)`, cuDNN in deterministic mode
  without autotuning, and `CUBLAS_WORKSPACE_CONFIG=:4096:8` (set before the first cuBLAS
  call): the same numbers on every run on CUDA, at a cost of the slower kernels it forbids.
  On the CPU, ts3ray is deterministic anyway.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch
from torch import nn

from ts3ray.errors import warn

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}  # config.PRECISION_NAMES


def static_shapes(compile_mode: str) -> bool:
    """Whether training batches must all have one shape (CUDA graphs)."""
    return compile_mode == "reduce-overhead"


def compile_options(compile_mode: str, device: torch.device) -> tuple[dict, str | None]:
    """torch.compile's keyword arguments for a run's `compile` on `device`, and a line saying
    what differs from the request (None when nothing does)."""
    if compile_mode == "reduce-overhead" and device.type != "cuda":
        return {}, (f"compile=reduce-overhead on {device.type}: CUDA graphs need a CUDA device; "
                    "compiling without them (torch.compile's default mode)")
    return ({} if compile_mode == "default" else {"mode": compile_mode}), None


_SAID: set[str] = set()


def say(line: str) -> None:
    """A one-line warning on stderr (a trial's log under Ray), once per process: the K
    members of a fused array and its networks would otherwise repeat it."""
    if line not in _SAID:
        _SAID.add(line)
        warn(line)


class CompiledOrEager:
    """`fn` through torch.compile; when compiling it fails, one line says why and `fn` runs
    uncompiled from then on. Safe to retry: dynamo and the backend compile the forward while
    tracing it with fake tensors, before the compiled code touches a real tensor. The
    backward is compiled then too (AOTAutograd's `force_non_lazy_backward_lowering`), not
    lazily at the first `backward()`, where a failure would end the run outside this
    fallback (tests/test_accel.py injects one)."""

    def __init__(self, fn, compile_mode: str, device: torch.device, what: str):
        options, note = compile_options(compile_mode, device)
        if note:
            say(note)  # once per process (say)
        self.fn, self.what, self.mode = fn, what, compile_mode
        self.compiled = torch.compile(fn, **options)
        from torch._functorch import config as aot_config  # imported on demand by torch

        self.aot_config = aot_config

    def __call__(self, *args, **kwargs):
        if self.compiled is not None:
            try:
                with self.aot_config.patch(force_non_lazy_backward_lowering=True):
                    return self.compiled(*args, **kwargs)
            except torch._dynamo.exc.TorchDynamoException as error:
                first = str(error).strip().split("\n\n")[0]  # not torch's hints after it
                say(f"compile={self.mode}: {self.what} runs uncompiled, compiling it failed: "
                    f"{type(error).__name__}: {first}")  # one line (errors.one_line)
                self.compiled = None
        return self.fn(*args, **kwargs)


def set_deterministic(on: bool) -> None:
    """Deterministic kernels in this process, or not (module docstring). Set either way, so
    that a reused Tune actor does not carry one trial's choice into the next."""
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # warn_only: ops without a deterministic CUDA kernel (max-pool's backward) warn instead of
    # failing; with non-overlapping 2x2 pools, as in ts3ray's nets, their atomic adds never
    # meet, so they are deterministic in practice (benchmarks/bench_gpu.py checks the rows)
    torch.use_deterministic_algorithms(on, warn_only=True)
    torch.backends.cudnn.deterministic = on
    torch.backends.cudnn.benchmark = False


def _to_channels_last(module: nn.Module, args):
    x = args[0]
    if isinstance(x, torch.Tensor) and x.dim() == 4:
        return (x.contiguous(memory_format=torch.channels_last), *args[1:])
    return None


class Acceleration:
    """The four options of one run, applied to its models and epochs."""

    def __init__(self, config, device: torch.device):
        self.device = device
        self.dtype = PRECISIONS[config.precision]
        self.channels_last = config.channels_last
        self.compile_mode = config.compile
        set_deterministic(config.deterministic)

    def prepare(self, model: nn.Module) -> nn.Module:
        """Memory format and compilation, in place (parameters keep their identity)."""
        if self.channels_last and any(isinstance(m, nn.Conv2d) for m in model.modules()):
            model.to(memory_format=torch.channels_last)
            model.register_forward_pre_hook(_to_channels_last)
        if self.compile_mode != "none":
            # nn.Module.compile's own assignment, with the fallback (CompiledOrEager)
            what = f"the {type(model).__name__} forward"
            model._compiled_call_impl = CompiledOrEager(model._call_impl, self.compile_mode,
                                                        self.device, what)
        return model

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if self.dtype is None:
            yield
            return
        # cache_enabled=False: the context spans a whole epoch, optimiser steps included, and
        # autocast's cache would keep serving the bf16 copy of a weight cast before its update
        # (measured on digits: the loss of S's 2nd batch 3.13 instead of 2.48, then divergence)
        with torch.autocast(device_type=self.device.type, dtype=self.dtype, cache_enabled=False):
            yield


def peak_memory_mb(device: torch.device) -> float:
    """Peak allocated CUDA memory since the last reset, in MiB (NaN off CUDA)."""
    if device.type != "cuda":
        return float("nan")
    return torch.cuda.max_memory_allocated(device) / 2**20


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
