"""Optuna search over TS3-Net's method parameters (Sec. IV-C 2), judged on validation data.

The space comes from the parameter registry (`config.METHOD_PARAMS`): lambda (Eq. 5), tau
(Eq. 6) and gamma (Eq. 7) uniform in [0, 1]; E1 an integer in [0, E - 1]; E2 sampled as a
*fraction* `e2_frac` in [0, 1] of the epochs E - E1 left after the warm-up, E2 = round(frac
(E - E1)). Every range is fixed, so multivariate TPE models all five coordinates jointly and
QMC samples all of them (a range that depended on E1 made QMC fall back to random sampling
for E2), and every suggestion satisfies E1 + E2 <= E. The paper's defaults are evaluated first.

Budget awareness (`LevelAwareOptunaSearch`): each finished IMP level reports the objective as
an intermediate value (step = levels done); a trial that ASHA stopped before its last level
is told to the study as PRUNED, not COMPLETE with its low-budget value, so TPE ranks it by
the levels it finished. TPE runs with `constant_liar` so that parallel suggestions spread out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ts3ray.config import METHOD_PARAMS
from ts3ray.errors import UserError

MODE = "max"  # every selection signal is an accuracy
E2_FRACTION = "e2_frac"  # the searched coordinate behind E2 (see module docstring)
LEVELS_DONE = "levels_done"  # reported by the trainable: completed IMP levels
LEVEL_END = "level_end"  # true on the report of a level's last epoch


def coordinate(name: str) -> str:
    """The searched coordinate of a parameter (E2 is searched through `e2_frac`)."""
    return E2_FRACTION if METHOD_PARAMS[name].search == "rest_fraction" else name


def rest_epochs(fraction: float, epochs: int, e1: int) -> int:
    """E2 from its searched fraction: round(fraction x (E - E1)), so E1 + E2 <= E."""
    return int(round(fraction * (epochs - e1)))


@dataclass(frozen=True)
class MethodSpace:
    """Define-by-run space for one schedule length `epochs` with fixed ranges (picklable:
    Tune saves it). It returns the derived E2 beside the sampled coordinates."""

    epochs: int
    bounds: tuple[tuple[str, float, float], ...] = ()  # narrowed ranges (--space, a spec)

    def range(self, coordinate: str) -> tuple[float, float]:
        """The coordinate's range: its --space bounds, else the full one."""
        full = (0, self.epochs - 1) if coordinate == "e1" else (0.0, 1.0)  # E1 < E
        return next(((lo, hi) for name, lo, hi in self.bounds if name == coordinate), full)

    def __call__(self, trial) -> dict[str, Any]:
        values: dict[str, Any] = {}
        derived: dict[str, Any] = {}
        for name, param in METHOD_PARAMS.items():  # registry order: E1 before E2
            if param.search == "unit":
                values[name] = trial.suggest_float(name, *self.range(name))
            elif param.search == "epochs":
                low, high = self.range(name)
                values[name] = trial.suggest_int(name, int(low), int(high))
            else:  # "rest_fraction"
                fraction = trial.suggest_float(E2_FRACTION, *self.range(E2_FRACTION))
                derived[name] = rest_epochs(fraction, self.epochs, values["e1"])
        return derived  # added to the suggested values by OptunaSearch

    def point(self, values: dict[str, Any]) -> dict[str, Any]:
        """The searched coordinates of a configuration (e.g. the paper's defaults)."""
        e1 = int(values["e1"])
        if not (0 <= e1 < self.epochs and 0 <= values["e2"] <= self.epochs - e1):
            raise UserError(f"the base point e1={values['e1']}, e2={values['e2']} lies outside "
                            f"the search space (E1 < E = {self.epochs}, E1 + E2 <= E)")
        point = {}
        for name, param in METHOD_PARAMS.items():
            if param.search == "rest_fraction":
                rest = self.epochs - e1
                point[E2_FRACTION] = values[name] / rest if rest else 0.0
            else:
                point[name] = values[name]
        for coordinate, value in point.items():  # the base point, clipped into --space
            low, high = self.range(coordinate)
            point[coordinate] = type(value)(min(max(value, low), high))
        return point


def search_coordinates() -> tuple[str, ...]:
    return tuple(coordinate(name) for name in METHOD_PARAMS)


def parse_space(text: str, epochs: int) -> tuple[tuple[str, float, float], ...]:
    """`--space lam=0.2:0.8,e1=0:5` -> ((lam, 0.2, 0.8), (e1, 0, 5)): narrowed ranges of
    the searched coordinates (lam, tau, gamma, e2_frac in [0, 1]; e1 an integer < E)."""
    out = []
    names = search_coordinates()
    for item in filter(None, (t.strip() for t in text.split(","))):
        name, _, bounds = item.partition("=")
        low_text, _, high_text = bounds.partition(":")
        full = (0, epochs - 1) if name == "e1" else (0.0, 1.0)
        try:
            low, high = (int(low_text), int(high_text)) if name == "e1" else \
                (float(low_text), float(high_text))
        except ValueError:
            low = high = None
        if name not in names or low is None or not full[0] <= low <= high <= full[1]:
            raise UserError(f"--space item {item!r} is not allowed: NAME=LOW:HIGH with NAME one "
                            f"of {', '.join(names)} and {full[0]} <= LOW <= HIGH <= {full[1]}"
                            f"{' for e1 (E1 < E, integers)' if name == 'e1' else ''}")
        if any(name == seen for seen, _, _ in out):
            raise UserError(f"--space {name} is given twice: one NAME=LOW:HIGH per name")
        out.append((name, low, high))
    return tuple(out)


OPTION_PREFIX = "option."  # a searched method option's coordinate (not a config key)


@dataclass(frozen=True)
class TunableSpace:
    """Define-by-run space over a method's tunable constants (MethodDef.tunables), for the
    controlled protocol's per-method tuning (controlled.py). TS3-Net's tunables are config
    keys and are suggested as such; a competitor's are method options: each suggested as
    `option.<name>` and returned merged into the trial's `method_options` (picklable)."""

    tunables: tuple  # of method.base.Tunable
    config_keys: bool  # True: the tunables are config keys (TS3-Net)
    base_options: str = ""  # the method's resolved options, the untuned ones kept

    def coordinate(self, name: str) -> str:
        return name if self.config_keys else OPTION_PREFIX + name

    def __call__(self, trial) -> dict[str, Any]:
        values = {}
        for t in self.tunables:
            suggest = trial.suggest_int if t.integer else trial.suggest_float
            low, high = (int(t.low), int(t.high)) if t.integer else (t.low, t.high)
            values[t.name] = suggest(self.coordinate(t.name), low, high, log=t.log)
        if self.config_keys:
            return {}
        return {"method_options": self.options_text(values)}

    def options_text(self, values: dict[str, Any]) -> str:
        items = dict(item.split("=", 1) for item in self.base_options.split(",") if item)
        items.update({k: repr(v) if isinstance(v, float) else str(v) for k, v in values.items()})
        return ",".join(f"{k}={items[k]}" for k in sorted(items))

    def point(self, values: dict[str, Any]) -> dict[str, Any]:
        """The published constants (the base configuration) as the first point to evaluate,
        clipped into the ranges."""
        from ts3ray.method.registry import method_options
        from ts3ray.config import RunConfig

        source = values if self.config_keys else vars(method_options(RunConfig(**values)))
        point = {}
        for t in self.tunables:
            value = min(max(source[t.name], t.low), t.high)
            point[self.coordinate(t.name)] = int(value) if t.integer else float(value)
        return point


def _tpe(seed: int):
    import optuna

    # multivariate: the coordinates interact (E1/E2 share the schedule; tau and gamma act
    # together in refinement); constant_liar: running trials count as bad guesses so that
    # parallel suggestions do not pile up on one point.
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)


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
    import os

    os.makedirs(os.path.dirname(os.path.abspath(spec)), exist_ok=True)  # the sweep folder
    return optuna.storages.JournalStorage(JournalFileBackend(spec))


def last_level_test_acc(results: str, trial_id: str) -> float | None:
    """`acc_sparse_last` of the trial's highest finished level in its levels rows (None when it
    wrote none); the rows of every attempt, a level written twice read once."""
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    from ts3ray import storage

    fs, folder = storage.resolve(storage.join(results, "levels", trial_id))
    files = sorted(f.path for f in fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
                   if f.path.endswith(".parquet"))
    best = None
    for path in files:
        table = pq.read_table(path, filesystem=fs, columns=["round", "acc_sparse_last"])
        for level, acc in zip(table["round"].to_pylist(), table["acc_sparse_last"].to_pylist()):
            if best is None or level >= best[0]:
                best = (level, acc)
    return None if best is None else float(best[1])


def level_aware_search_class():
    """OptunaSearch that reports per level and tells ASHA-stopped trials as PRUNED (a
    function, so that importing this module needs no Ray)."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    class LevelAwareOptunaSearch(OptunaSearch):
        def __init__(self, *args, total_levels: int, results: str | None = None, **kwargs):
            super().__init__(*args, **kwargs)
            self.total_levels = total_levels  # R + 1: a full-budget trial finishes all
            self.results = results  # the sweep's results folder: reported test accuracy

        def _user_attrs(self, trial_id: str, result: dict | None) -> None:
            """Beside the sampled values (E2 as e2_frac): the Tune trial id, the resolved E1
            and E2 and the last finished level (test accuracy: _reported_test_acc; the study
            optimises `self.metric`, a validation accuracy)."""
            trial = self._ot_trials.get(trial_id)
            if trial is None or not result or not result.get(LEVEL_END):
                return
            trial.set_user_attr("trial_id", trial_id)
            for key in ("level", "e1", "e2"):
                if key in result:
                    trial.set_user_attr(key, int(result[key]))

        def _reported_test_acc(self, trial_id: str) -> None:
            """Once, as the trial ends: the test accuracy of its last finished level, read from
            the rows it wrote (results.py) — never seen by Tune, ASHA or the sampler."""
            trial = self._ot_trials.get(trial_id)
            acc = last_level_test_acc(self.results, trial_id) if self.results else None
            if trial is not None and acc is not None:
                trial.set_user_attr("test_acc", acc)

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            if result.get(LEVEL_END) and trial_id not in self._completed_trials:
                self._user_attrs(trial_id, result)
                self._ot_trials[trial_id].report(result[self.metric], result[LEVELS_DONE])

        def on_trial_complete(self, trial_id: str, result: dict | None = None,
                              error: bool = False) -> None:
            stopped = (result and not error and trial_id not in self._completed_trials
                       and result.get(LEVELS_DONE, 0) < self.total_levels)
            if trial_id not in self._completed_trials and not error:
                self._user_attrs(trial_id, result)
                self._reported_test_acc(trial_id)
            if not stopped:
                super().on_trial_complete(trial_id, result, error)
                return
            ot_trial = self._ot_trials[trial_id]
            if result.get(LEVEL_END):  # Tune skips on_trial_result for a stopping report
                ot_trial.report(result[self.metric], result[LEVELS_DONE])
            self._ot_study.tell(ot_trial, None, state=optuna.trial.TrialState.PRUNED)
            self._completed_trials.add(trial_id)

    return LevelAwareOptunaSearch


def check_sampler(sampler: str) -> None:
    if sampler not in SAMPLERS:
        raise UserError(f"--sampler={sampler!r} is not allowed: one of {', '.join(SAMPLERS)}")


def make_searcher(base: dict[str, Any], metric: str, *, sampler: str = "tpe", seed: int = 0,
                  storage: str | None = None, study_name: str | None = None,
                  total_levels: int | None = None, space=None, results: str | None = None):
    """A level-aware OptunaSearch over `space` (default `MethodSpace(base['epochs'])`, TS3-Net's
    five parameters) maximising `metric`, starting from the base values."""
    import optuna

    check_sampler(sampler)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created" line
    space = space or MethodSpace(int(base["epochs"]))
    return level_aware_search_class()(
        space=space,
        metric=metric,
        mode=MODE,
        points_to_evaluate=[space.point(base)],
        sampler=SAMPLERS[sampler](seed),
        storage=optuna_storage(storage),
        study_name=study_name,
        total_levels=total_levels or int(base["rounds"]) + 1,
        results=results,
    )
