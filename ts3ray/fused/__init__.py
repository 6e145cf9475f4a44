"""Fused trial arrays (issue 23): K lottery runs that share dataset, architecture and
schedule, trained as one fused model with torch.func (stack_module_state-style stacked
parameters + vmap + functional_call). Ray-free, like run.py, which each member still is:
every member is a full `LotteryRun` (its own data order, noisy labels, init, masks, records),
and the array only replaces the members' training steps by one vectorised step.
"""
from ts3ray.fused.array import FUSED_METHODS, MEMBER_KEYS, FusedArray, check_fusable

__all__ = ["FUSED_METHODS", "MEMBER_KEYS", "FusedArray", "check_fusable"]
