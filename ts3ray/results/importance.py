"""Parameter importance of a search sweep, from Parquet only (no Ray).

The full-budget trials become an in-memory Optuna study (`optuna.trial.create_trial`):
lam / tau / gamma with FloatDistribution(0, 1) (widened if a value lies outside), e1 / e2
with IntDistribution over the observed range, value = the metric at each trial's highest
sparsity level. `optuna.importance.get_param_importances` then ranks the parameters with
fANOVA (seed 0) or PED-ANOVA. Parameters with one value in a setting are left out (their
importance is nil by construction) and named in a footnote.
"""
from __future__ import annotations

import warnings
from typing import Callable

import pandas as pd

from ts3ray.config import METHOD_PARAMS
from ts3ray.errors import ConfigError, UserError
from ts3ray.results.load import final_level, settings_in_order
from ts3ray.results.table_model import Block, Cell, Label, Row, TableModel
from ts3ray.results.tables import TableOptions, full_budget


def _fanova():
    from optuna.importance import FanovaImportanceEvaluator

    return FanovaImportanceEvaluator(seed=0)


def _ped_anova():
    from optuna.importance import PedAnovaImportanceEvaluator

    return PedAnovaImportanceEvaluator()


EVALUATORS: dict[str, Callable[[], object]] = {"fanova": _fanova, "ped-anova": _ped_anova}


def _distribution(name: str, values: pd.Series):
    from optuna.distributions import FloatDistribution, IntDistribution

    if METHOD_PARAMS[name].integer:
        return IntDistribution(int(values.min()), int(values.max()))
    return FloatDistribution(min(0.0, float(values.min())), max(1.0, float(values.max())))


def param_importances(trials: pd.DataFrame, params: list[str], value: str,
                      evaluator: str = "fanova") -> dict[str, float]:
    """Importance of each of `params` for column `value`, one row of `trials` per trial."""
    import optuna

    if evaluator not in EVALUATORS:
        raise ConfigError("evaluator", evaluator, " | ".join(EVALUATORS))
    distributions = {p: _distribution(p, trials[p]) for p in params}
    cast = {p: (int if METHOD_PARAMS[p].integer else float) for p in params}
    study_trials = [
        optuna.trial.create_trial(
            params={p: cast[p](row[p]) for p in params},
            distributions=distributions,
            value=float(row[value]),
        )
        for _, row in trials.iterrows()
    ]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    study.add_trials(study_trials)
    with warnings.catch_warnings():  # PED-ANOVA is marked experimental
        warnings.simplefilter("ignore")
        scores = optuna.importance.get_param_importances(study, evaluator=EVALUATORS[evaluator]())
    return {p: float(v) for p, v in scores.items()}


def importance_table(levels: pd.DataFrame, opts: TableOptions) -> TableModel:
    """Ranked parameter | importance, one block per setting."""
    what = "importance"
    if opts.evaluator not in EVALUATORS:
        raise ConfigError("evaluator", opts.evaluator, " | ".join(EVALUATORS))
    trials = full_budget(levels, opts, opts.params, what)
    final = final_level(trials.rows)
    final = final[final["_value"].notna()]
    blocks, notes = [], []
    for setting in settings_in_order(final):
        part = final[final["_setting"] == setting]
        varied = [p for p in opts.params if part[p].nunique() > 1]
        constant = [f"{p}={part[p].iloc[0]:g}" for p in opts.params if p not in varied]
        if len(part) < 2 or not varied:
            raise UserError(f"{what}: {setting} has {len(part)} full-budget trial(s) varying "
                            f"{', '.join(varied) or 'no parameter'}; need at least 2 trials "
                            "and one varied parameter")
        scores = param_importances(part, varied, "_value", opts.evaluator)
        ranked = sorted(scores.items(), key=lambda kv: -kv[1])
        rows = [Row(p, [Cell(v)]) for p, v in ranked]
        blocks.append(Block(setting, Label(setting), Label("parameter"),
                            [Label("importance")], rows))
        note = f"{setting}: {len(part)} full-budget trials used"
        notes.append(note + (f"; constant, left out: {', '.join(constant)}" if constant else ""))
    notes.insert(0, f"{opts.evaluator} importance of {opts.metric} at each trial's highest "
                    "sparsity level (normalised to sum to 1)")
    return TableModel(f"Parameter importance ({opts.evaluator}): {opts.metric}",
                      "setting", "parameter", blocks, notes + trials.notes, decimals=3)
