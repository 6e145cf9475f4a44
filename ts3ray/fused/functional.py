"""One network of K members as stacked tensors: forward by vmap + functional_call, one
optimiser over the stacks, per-member masks re-applied after every step.

The members' own modules keep working: each member parameter is rebound to a view of row k
of its stack (`bind`), so everything a `LotteryRun` does with its models (pruning by its own
magnitudes, reset to its initial weights, evaluation, checkpoints, tickets) reads and writes
the fused storage in place.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from ts3ray.accel import CompiledOrEager


class FusedNet:
    """The same network of K members: `params[name]` has shape (K, *shape)."""

    def __init__(self, models: list[nn.Module], *, compile_mode: str = "none",
                 device: torch.device | None = None):
        self.template = exact_linears(copy.deepcopy(models[0]))  # its tensors are unused
        self.template._compiled_call_impl = None  # a member's compile: the fused one wraps it
        names = [n for n, _ in models[0].named_parameters()]
        self.params = {
            n: torch.stack([dict(m.named_parameters())[n].detach() for m in models])
            .requires_grad_(True)
            for n in names
        }
        self.buffers = {  # BatchNorm running statistics, per member
            n: torch.stack([dict(m.named_buffers())[n] for m in models])
            for n, _ in models[0].named_buffers()
        }
        for k, model in enumerate(models):
            bind(model, {n: p[k] for n, p in self.params.items()})
            bind_buffers(model, {n: b[k] for n, b in self.buffers.items()})
        if compile_mode == "reduce-overhead":
            for p in self.params.values():  # gradients at fixed addresses from the start:
                # the first backward accumulates into them in place (0 + g = g) instead of
                # handing over its own outputs, which CUDA graphs would overwrite at the next
                # replay ("accessing tensor output of CUDAGraphs that has been overwritten"
                # at the zeroing in step). Only here: the uncompiled step's first batch
                # then traces as one graph (tests/test_fused.py)
                p.grad = torch.zeros_like(p)
        self.masks: dict[str, torch.Tensor] = {}
        self.optimizer: torch.optim.Optimizer | None = None
        self._forward = vmap(self._one, in_dims=(0, 0, 0))
        if compile_mode != "none":  # the run's `compile` (accel.py), on the fused forward:
            # AOT autograd compiles its backward too; reduce-overhead captures both by CUDA
            # graphs (the batches have one shape: run.py drops the last, smaller one). The
            # stacks are the forward's inputs, not module attributes: marked static (fixed
            # addresses, updated in place), CUDA graphs neither copy them at every replay nor
            # refuse the in-place BatchNorm updates of the buffers ("mutated inputs")
            for tensor in [*self.params.values(), *self.buffers.values()]:
                torch._dynamo.mark_static_address(tensor)
            self._forward = CompiledOrEager(self._forward, compile_mode,
                                            device or torch.device("cpu"), "the fused forward")

    @property
    def size(self) -> int:
        return next(iter(self.params.values())).shape[0]

    def _one(self, params, buffers, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.template, (params, buffers), (x,))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(K, B, ...) inputs -> (K, B, C) logits, member k's input through member k (in
        train mode BatchNorm updates each member's own running statistics)."""
        return self._forward(self.params, self.buffers, x)

    def train(self, mode: bool = True) -> "FusedNet":
        """BatchNorm by batch statistics (train) or running statistics (eval), as
        nn.Module.train for the members' modules."""
        self.template.train(mode)
        return self

    def eval(self) -> "FusedNet":
        return self.train(False)

    def set_masks(self, member_masks: list[dict[str, torch.Tensor]]) -> None:
        """Stack the members' current masks (after each level's pruning)."""
        names = list(member_masks[0]) if member_masks else []
        self.masks = {n: torch.stack([m[n] for m in member_masks]) for n in names}

    def step(self, loss: torch.Tensor) -> None:
        """One backward pass of the members' summed losses (member k's gradient is the
        gradient of its own loss alone: the stacks share nothing), one optimiser step over
        the stacks (elementwise: per-member SGD/Adam state, the same lr), then the masks,
        so that pruned weights stay exactly zero (run.py's joint_step, K at once).

        Launch-lean and capturable (issue 23): gradients are zeroed in place (fixed
        addresses, as CUDA graphs need; `zero_grad(set_to_none=True)` frees them and is a
        graph break for torch.compile), the optimiser steps every stack in one foreach call
        (array.py), the masks multiply in one foreach call, and nothing reads a value back
        to the host: the step traces as one graph (tests/test_fused.py). The numbers are
        the unfused step's, bit for bit on CPU (0 + g = g; foreach runs the same ops)."""
        grads = [p.grad for p in self.params.values() if p.grad is not None]
        if grads:
            torch._foreach_zero_(grads)
        loss.backward()
        self.optimizer.step()
        if self.masks:
            with torch.no_grad():
                names = list(self.masks)
                torch._foreach_mul_([self.params[n] for n in names],
                                    [self.masks[n] for n in names])


class _BatchedLinear(torch.autograd.Function):
    """K linear layers at once, (K, B, I) x (K, O, I) + (K, O) -> (K, B, O), rounded as K
    separate nn.Linear calls: forward baddbmm (as addmm, F.linear's kernel for 2-D inputs),
    gradients bmm(g, W), bmm(g^T, x) (mm's backward for the transposed weight computes
    g^T x) and g.sum over the batch."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        if bias is None:
            return torch.bmm(x, weight.transpose(1, 2))
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x = grad.bmm(weight) if ctx.needs_input_grad[0] else None
        grad_w = grad.transpose(1, 2).bmm(x) if ctx.needs_input_grad[1] else None
        grad_b = grad.sum(1) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


class _ExactLinearFunction(torch.autograd.Function):
    """F.linear of a batch of vectors whose vmap rule is _BatchedLinear. vmap's own rules
    for F.linear round differently from one unbatched nn.Linear (bmm + bias forward, x^T g
    for the weight gradient): the same numbers up to ~1e-7, but through ReLU kinks such
    differences grow to 1e-4 within a few epochs, and fused members would no longer
    reproduce their unfused runs bit for bit."""

    @staticmethod
    def forward(x, weight, bias):
        return F.linear(x, weight, bias)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, bias = inputs
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None

    @staticmethod
    def backward(ctx, grad):  # unbatched use: autograd's own gradients of F.linear
        x, weight = ctx.saved_tensors
        grad_x = grad.mm(weight) if ctx.needs_input_grad[0] else None
        grad_w = grad.t().mm(x) if ctx.needs_input_grad[1] else None
        grad_b = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b

    @staticmethod
    def vmap(info, in_dims, x, weight, bias):
        def batched(t, dim):
            if t is None:
                return None
            return t.movedim(dim, 0) if dim is not None else t.expand(info.batch_size, *t.shape)
        x, weight, bias = (batched(t, d) for t, d in zip((x, weight, bias), in_dims))
        return _BatchedLinear.apply(x, weight, bias), 0


class ExactLinear(nn.Linear):
    """nn.Linear through _ExactLinearFunction (2-D inputs: a batch of feature vectors)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ExactLinearFunction.apply(x, self.weight, self.bias)


def exact_linears(model: nn.Module) -> nn.Module:
    """`model` with every nn.Linear's class switched to ExactLinear (same parameters)."""
    for module in model.modules():
        if type(module) is nn.Linear:
            module.__class__ = ExactLinear
    return model


def bind(model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Replace `model`'s parameters by Parameters aliasing `tensors` (views of the stacks).
    They do not require grad: the fused step differentiates the stacks, never the views."""
    for name, tensor in tensors.items():
        owner, _, attr = name.rpartition(".")
        module = model.get_submodule(owner) if owner else model
        setattr(module, attr, nn.Parameter(tensor.detach(), requires_grad=False))


def bind_buffers(model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Replace `model`'s buffers by `tensors` (views of the stacks)."""
    for name, tensor in tensors.items():
        owner, _, attr = name.rpartition(".")
        module = model.get_submodule(owner) if owner else model
        module._buffers[attr] = tensor


def rowwise_masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """losses.masked_mean of each member's row: (K, B) -> (K,)."""
    weights = mask.to(values.dtype)
    return (values * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def rowwise_small_loss_mask(losses: torch.Tensor, keep: int) -> torch.Tensor:
    """losses.small_loss_mask of each member's row with the same keep count (Eq. 2)."""
    mask = torch.zeros_like(losses, dtype=torch.bool)
    if keep:
        mask.scatter_(1, torch.topk(losses, keep, dim=1, largest=False, sorted=False).indices,
                      True)
    return mask


def member_optimizer_state(fused: dict, k: int) -> dict:
    """Row k of a fused optimiser's state_dict, in the form of an unfused optimiser over one
    member's parameters (same parameter order): per-element state (momentum buffers, Adam's
    moments) sliced, shared scalars (Adam's step) copied."""
    def row(value):
        if not torch.is_tensor(value):
            return value
        return value[k].clone() if value.dim() > 0 else value.clone()

    return {"state": {i: {name: row(v) for name, v in s.items()}
                      for i, s in fused["state"].items()},
            "param_groups": copy.deepcopy(fused["param_groups"])}


def fused_optimizer_state(members: list[dict]) -> dict:
    """The members' unfused optimiser state_dicts stacked into one fused state_dict (the
    inverse of member_optimizer_state; shared scalars taken from member 0)."""
    first = members[0]

    def stacked(i, name, value):
        if not torch.is_tensor(value) or value.dim() == 0:
            return value
        return torch.stack([m["state"][i][name] for m in members])

    return {"state": {i: {name: stacked(i, name, v) for name, v in s.items()}
                      for i, s in first["state"].items()},
            "param_groups": copy.deepcopy(first["param_groups"])}
