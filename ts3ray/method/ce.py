"""CE: plain cross-entropy, the TS3 paper's "baseline" (Tables I-III) and, inside IMP, the
standard lottery ticket (Table VIII `warm`). Trained with TS3-Net's own recipe (under
`published` the paper's, under `code` the official code's): the paper runs its baseline in its
framework."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ts3ray.method import peer_losses as PL
from ts3ray.method import ts3net
from ts3ray.method.base import MethodDef, Setting
from ts3ray.method.protocols import Recipe
from ts3ray.method.robust import ONE_NETWORK_WHY, robust_epoch


@dataclass(frozen=True)
class CeOptions:
    """CE has no options."""


def recipes(protocol: str, setting: Setting) -> Recipe:
    """TS3-Net's recipe under the same protocol (`code`: the official code's optimiser
    settings, without TS3-Net's own behaviours)."""
    recipe = ts3net.recipes(protocol, setting)
    return dataclasses.replace(recipe, source=f"the TS3 paper's baseline: {recipe.source}",
                               config={})


METHOD = MethodDef(
    name="ce", paper="standard cross-entropy (the TS3 paper's 'baseline')", networks=("S",),
    options=CeOptions, epoch=robust_epoch(lambda o, logits, y: PL.ce_per_sample(logits, y)),
    recipes=recipes, why_pruned=ONE_NETWORK_WHY)
