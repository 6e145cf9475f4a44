"""MAE — Ghosh et al., Robust Loss Functions under Label Noise for Deep Neural Networks,
AAAI 2017. MAE = ||e_y - p||_1 = 2 (1 - p_y) (paper; `mae_scale=2`); the APL authors' code,
the public PyTorch MAE and the TS3 comparison's likely source, uses the reduced 1 - p_y
(`mae_scale=1`, fixed by `published`). For MAE alone the factor only rescales the gradient,
i.e. the learning rate — which is why the protocol owns it."""
from __future__ import annotations

from dataclasses import dataclass, replace

from ts3ray.method import peer_losses as PL
from ts3ray.method.base import MethodDef, Setting, Tunable
from ts3ray.method.options import check
from ts3ray.method.protocols import Recipe
from ts3ray.method.robust import ONE_NETWORK_WHY, robust_epoch


@dataclass(frozen=True)
class MaeOptions:
    mae_scale: float = 2.0  # 2: ||e_y - p||_1 (paper); 1: 1 - p_y (APL code)


# digits (1,437 images): at the repository's batch 128 an epoch is 11 steps, and MAE's
# gradient, p_y (1 - p_y) per logit, is a tenth of CE's near the uniform start, so it barely
# leaves chance within a short schedule: quick compare (E 20, sym-40%, seed 0) dense 48.6% at
# batch 128 (63.3% with wd 1e-3), 74.2% at 32, 86.7% at 16. ts3ray's choice: batch 16 there.
SMALL_SET_BATCH = {"digits": 16}


def recipes(protocol: str, setting: Setting) -> Recipe:
    from ts3ray.method.apl import apl_repo_recipe

    recipe = apl_repo_recipe(setting, "mae", options=dict(mae_scale=1.0))
    if setting.dataset in SMALL_SET_BATCH:
        batch = SMALL_SET_BATCH[setting.dataset]
        return replace(recipe, batch_size=batch, source=f"{recipe.source} (nearest published: "
                       f"MNIST; batch {batch} on {setting.dataset}, ts3ray's choice)")
    return recipe


def check_options(o: MaeOptions, setting: Setting) -> None:
    check(o.mae_scale > 0, "mae_scale", o.mae_scale, "a positive number")


METHOD = MethodDef(
    name="mae", paper="Ghosh et al., Robust loss functions under label noise, AAAI 2017",
    networks=("S",), options=MaeOptions,
    epoch=robust_epoch(lambda o, logits, y: PL.mae_per_sample(logits, y, o.mae_scale)),
    recipes=recipes, check=check_options,
    tunables=(Tunable("mae_scale", 0.25, 16.0, log=True),), why_pruned=ONE_NETWORK_WHY)
