"""Variants of TS3-Net as data: the ablations of Table VII and the designs of Table X.

A variant says which of the three stages of Algorithm 1 it trains, whether the entropy term
of Eq. 4-5 is used, who teaches S (the dense peer D, S itself, or a second sparse net), and
whether stage two is alternate learning or co-teaching.

Stage windows are fixed by the config: epochs [0, e1) are the warm-up window, [e1, e1+e2)
the alternate window, the rest the refinement window. An epoch whose stage a variant leaves
out is trained by the nearest earlier stage the variant has (or its first stage when none is
earlier), so every variant trains for the same E epochs per round. E.g. `warm` is plain
cross-entropy for all E epochs (the standard lottery-ticket baseline when run with R rounds);
`warm+refine` warms up for e1+e2 epochs then refines; `semi` alternates for all E epochs.
"""
from __future__ import annotations

from dataclasses import dataclass

WARMUP, ALTERNATE, REFINE, COTEACH = "warmup", "alternate", "refine", "coteach"
STAGE_ORDER = (WARMUP, ALTERNATE, REFINE)


@dataclass(frozen=True)
class Variant:
    name: str
    stages: tuple[str, ...]  # subset of STAGE_ORDER, in order
    entropy: bool = True  # lambda * entropy on the peer's large-loss set (Eq. 4-5)
    peer: str = "dense"  # who teaches S: "dense" (D), "self" (S alone), "sparse" (pruned D)
    second_stage: str = ALTERNATE  # ALTERNATE (paper) or COTEACH (Table X baseline)

    @property
    def has_dense(self) -> bool:
        return self.peer != "self"

    def stage_at(self, epoch: int, e1: int, e2: int) -> str:
        """The stage trained in 0-based epoch `epoch` of a round."""
        window = 0 if epoch < e1 else (1 if epoch < e1 + e2 else 2)
        present = [STAGE_ORDER.index(s) for s in self.stages]
        earlier = [i for i in present if i <= window]
        stage = STAGE_ORDER[max(earlier) if earlier else min(present)]
        if stage == ALTERNATE and self.second_stage == COTEACH:
            return COTEACH
        return stage


_FULL = (WARMUP, ALTERNATE, REFINE)
VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        # Table VII ablations
        Variant("full", _FULL),
        Variant("warm", (WARMUP,)),
        Variant("semi", (ALTERNATE,)),
        Variant("warm+semi", (WARMUP, ALTERNATE)),
        Variant("warm+refine", (WARMUP, REFINE)),
        Variant("semi+refine", (ALTERNATE, REFINE)),
        Variant("warm+alter", (WARMUP, ALTERNATE), entropy=False),
        # Table X architecture designs
        Variant("sparse", _FULL, peer="self"),
        Variant("sparse+sparse", _FULL, peer="sparse"),
        Variant("coteach", _FULL, entropy=False, second_stage=COTEACH),
    )
}
