"""Optuna search over TS3-Net's method parameters (Sec. IV-C 2): lam, tau, gamma, E1, E2.

The space is *define-by-run*: lam (Eq. 5), tau (Eq. 6) and gamma (Eq. 7) are uniform in
[0, 1]; E1 is an integer in [0, epochs] and E2 an integer in [0, epochs - E1], so every
suggestion satisfies E1 + E2 <= epochs (the third stage takes the remaining epochs) and no
trial is wasted on an invalid schedule. The paper's defaults are evaluated first.

The study uses no Optuna pruner; early stopping comes from the Tune scheduler (ASHA), and
Optuna records an ASHA-stopped trial as COMPLETE with its low-budget value.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ts3ray.errors import UserError

METRIC, MODE = "acc_sparse", "max"
SEARCHED = ("lam", "tau", "gamma", "e1", "e2")


@dataclass(frozen=True)
class MethodSpace:
    """Define-by-run space for one schedule length `epochs` (picklable: Tune saves it)."""

    epochs: int

    def __call__(self, trial) -> None:
        for name in ("lam", "tau", "gamma"):
            trial.suggest_float(name, 0.0, 1.0)
        e1 = trial.suggest_int("e1", 0, self.epochs)
        trial.suggest_int("e2", 0, self.epochs - e1)  # E1 + E2 <= E

    def contains(self, point: dict[str, Any]) -> bool:
        floats_ok = all(0.0 <= point[k] <= 1.0 for k in ("lam", "tau", "gamma"))
        return floats_ok and 0 <= point["e1"] and 0 <= point["e2"] <= self.epochs - point["e1"]


def _tpe(seed: int):
    import optuna

    return optuna.samplers.TPESampler(seed=seed)


def _random(seed: int):
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


def _qmc(seed: int):
    import optuna

    return optuna.samplers.QMCSampler(seed=seed, scramble=True)


SAMPLERS = {"tpe": _tpe, "random": _random, "qmc": _qmc}


def optuna_storage(spec: str | None):
    """None, an RDB URL (`sqlite:///study.db`, `postgresql://...`) or a journal file path."""
    if not spec:
        return None
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if "://" in spec:
        return optuna.storages.RDBStorage(spec)
    return optuna.storages.JournalStorage(JournalFileBackend(spec))


def make_searcher(base: dict[str, Any], *, sampler: str = "tpe", seed: int = 0,
                  storage: str | None = None, study_name: str | None = None):
    """OptunaSearch over `MethodSpace(base['epochs'])`, starting from the base values."""
    from ray.tune.search.optuna import OptunaSearch

    if sampler not in SAMPLERS:
        raise UserError(f"--sampler={sampler!r} is not allowed: one of {', '.join(SAMPLERS)}")
    space = MethodSpace(int(base["epochs"]))
    first = {k: base[k] for k in SEARCHED}
    if not space.contains(first):
        raise UserError(f"the base point {first} lies outside the search space")
    return OptunaSearch(
        space=space,
        metric=METRIC,
        mode=MODE,
        points_to_evaluate=[first],
        sampler=SAMPLERS[sampler](seed),
        storage=optuna_storage(storage),
        study_name=study_name,
    )
