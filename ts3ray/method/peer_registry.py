"""What the IMP loop needs to know about each competitor method, as data.

``METHODS[name]`` is a :class:`MethodSpec`. An IMP level of a method is, in outline::

    spec = METHODS[name]
    options = make_options(name, cfg.dataset, cfg.noise, cfg.noise_rate, overrides)
    models = {n: build_model(..., seed=derive_seed(cfg.seed, n)) for n in spec.networks}
    pruned = spec.pruned_networks(prune)            # masks for these only
    optimizers = one per network, or ONE over all networks if spec.joint_optimizer
    nets = {n: Net(models[n], optimizer_of[n], masks.get(n)) for n in spec.networks}
    state = {}                                       # reset at each level
    for epoch in range(cfg.epochs):                  # epoch = 0-based within the level
        ctx = PeerContext(data, options, key=global_epoch, epoch=epoch,
                          select_rate=cfg.effective_select_rate() if spec.uses_select_rate else 0.0,
                          seed=derive_seed(cfg.seed, "method"), stats=EpochStats(device),
                          state=state)
        spec.epoch(nets, ctx)
        stats.add("acc_S", accuracy(data, models, spec.evaluated(options)))
        stage = spec.stage(epoch, options)          # the `stage` column
    prune each network in `pruned` by its OWN weights' magnitudes; reset every network to
    its own initial weights (masked); rebuild the optimiser(s)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ts3ray.errors import ConfigError
from ts3ray.method.dividemix import dividemix_epoch
from ts3ray.method.peers import (PeerContext, coteaching_epoch, itlm_epoch, jocor_epoch,
                                 robust_loss_epoch)
from ts3ray.method.stages import Net

EpochStep = Callable[[dict[str, Net], PeerContext], None]
PRUNE_CHOICES = ("S", "both")


@dataclass(frozen=True)
class MethodSpec:
    name: str  # registry key; also the `stage` label of its epochs (warm-ups: "warmup")
    paper: str  # the method's paper
    networks: tuple[str, ...]  # ("S",) or ("S", "D"); S is the network IMP reports on
    epoch: EpochStep  # one training epoch: epoch(nets, ctx)
    joint_optimizer: bool = False  # one optimiser over all networks' parameters (JoCoR)
    uses_select_rate: bool = False  # reads ctx.select_rate = RunConfig.effective_select_rate()
    warmup_option: str | None = None  # options field holding its warm-up epochs, if any
    why_pruned: str = ""  # why the default pruned set is what it is
    code_optimizer: str = ""  # the authors' optimiser, where it differs from the run's SGD
    notes: tuple[str, ...] = field(default_factory=tuple)

    def pruned_networks(self, prune: str = "S") -> tuple[str, ...]:
        """Networks IMP prunes, each by its own weight magnitudes: "S" (default: S sparse,
        D a dense peer reset to its own init each level, as TS3-Net's two streams and the
        TS3 paper's Sec. IV-C-4 Co-teaching) or "both" (two sparse networks)."""
        if prune not in PRUNE_CHOICES:
            raise ConfigError("prune", prune, "S or both")
        return self.networks if prune == "both" else ("S",)

    def evaluated(self, options: Any) -> tuple[str, ...]:
        """Networks whose summed logits give the reported test prediction."""
        if getattr(options, "evaluate", "single") == "ensemble":
            return self.networks
        return ("S",)

    def stage(self, epoch: int, options: Any) -> str:
        """`stage` label of 0-based epoch `epoch` of a level."""
        if self.warmup_option and epoch < getattr(options, self.warmup_option):
            return "warmup"
        return self.name


_ROBUST_WHY = "one network: the TS3 paper (Sec. IV-C-4) trains only S for SCE, MAE, APL, ITLM"
_TWO_WHY = ("S is pruned and reported; D is its dense peer, reset to its own init each level "
            "(TS3 paper Sec. IV-C-4: 'Co-teaching and MSL train both S and D')")
_ADAM = "Adam lr 1e-3, linear decay to 0 from epoch 80 of 200 with beta1 0.9 -> 0.1, batch 128"

METHODS: dict[str, MethodSpec] = {
    s.name: s
    for s in (
        MethodSpec("ce", "standard cross-entropy (the TS3 paper's 'baseline')", ("S",),
                   robust_loss_epoch, why_pruned=_ROBUST_WHY),
        MethodSpec("sce", "Wang et al., Symmetric Cross Entropy, ICCV 2019", ("S",),
                   robust_loss_epoch, why_pruned=_ROBUST_WHY,
                   code_optimizer="SGD 0.01 momentum 0.9 (nesterov on MNIST), cosine; "
                                  "clip_grad_norm 5 (APL repo)"),
        MethodSpec("mae", "Ghosh et al., Robust loss functions under label noise, AAAI 2017",
                   ("S",), robust_loss_epoch, why_pruned=_ROBUST_WHY),
        MethodSpec("apl", "Ma et al., Normalized Loss Functions (APL), ICML 2020", ("S",),
                   robust_loss_epoch, why_pruned=_ROBUST_WHY,
                   code_optimizer="SGD 0.01 momentum 0.9 (0.1 on CIFAR-100), cosine; "
                                  "clip_grad_norm 5"),
        MethodSpec("itlm", "Shen & Sanghavi, Iterative Trimmed Loss Minimization, ICML 2019",
                   ("S",), itlm_epoch, uses_select_rate=True, warmup_option="warmup_epochs",
                   why_pruned=_ROBUST_WHY,
                   code_optimizer="plain SGD lr 0.1 x0.2 at 60% of each round; every round "
                                  "re-initialised and early-stopped on a noisy validation set",
                   notes=("trimmed set re-selected over the WHOLE training set every "
                          "`reselect_every` epochs without re-initialisation (see METHODS.md)",)),
        MethodSpec("coteaching", "Han et al., Co-teaching, NeurIPS 2018", ("S", "D"),
                   coteaching_epoch, uses_select_rate=True, why_pruned=_TWO_WHY,
                   code_optimizer=_ADAM),
        MethodSpec("jocor", "Wei et al., JoCoR, CVPR 2020", ("S", "D"), jocor_epoch,
                   joint_optimizer=True, uses_select_rate=True, why_pruned=_TWO_WHY,
                   code_optimizer=_ADAM + " (one Adam over both networks)"),
        MethodSpec("dividemix", "Li, Socher & Hoi, DivideMix, ICLR 2020", ("S", "D"),
                   dividemix_epoch, warmup_option="warmup_epochs", why_pruned=_TWO_WHY,
                   code_optimizer="SGD lr 0.02 momentum 0.9 wd 5e-4, /10 at epoch 150 of 300, "
                                  "batch 64 (warm-up batch 128)",
                   notes=("selects by GMM, not by the rate r",)),
    )
}
