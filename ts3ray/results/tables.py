"""Paper-style tables from the `levels` Parquet table: a DataFrame in, a TableModel out.

* `sensitivity_table` — Table IX (Sec. IV-C 2): a block per parameter, a row per value, a
  column per setting; one-at-a-time grid around a base configuration.
* `sparsity_table` — Tables VIII / XI: a row per variant (or arch), a column per sparsity.
* `compare_table` — Tables I-III: a row per method, a column per noise setting, a block per
  dataset and sparsity level, + the parameter counts.

Cells are the mean over seeds of the metric, ± the sample std (ddof=1) when a cell holds
several, over trials whose configurations differ in the seed alone (results/pooling.py: other
differences split a comparison row or refuse a table; a repeated seed counts once), with n and
a paired significance mark against the best where >= 3 seeds are shared. Every table says
which epoch it reports (`--report last|best_val|tail_mean`). Fractions in [0, 1] (all `acc_*` columns) are shown as percent with
2 decimals. Only full-budget trials count; early-stopped ones are left out and counted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ts3ray.config import METHOD_NAMES, METHOD_PARAMS
from ts3ray.errors import UserError
from ts3ray.results.load import (
    require_columns,
    check_metric, drop_early_stopped, drop_repeated_dense_levels, final_level,
    percent_scale,
    prepare, selection_notes, setting_label, settings_in_order,
)
from ts3ray.results.pooling import (cells_differ_in_n, count_notes, mark_significance,
                                    pooled_cell, require_one_configuration,
                                    split_configurations)
from ts3ray.results.table_model import Block, Cell, Label, Row, TableModel, mark_best, summarize

DEFAULT_METRIC = "acc_sparse_last"
# Row order of the paper's tables: the ablation variants first, the full method last.
VARIANT_ORDER = ("warm", "semi", "warm+semi", "warm+refine", "semi+refine", "warm+alter",
                 "sparse", "sparse+sparse", "coteach", "full")
# --report: which epoch of each level a table reports (none of them chooses on test data)
REPORT_RULES: dict[str, tuple[str, str]] = {
    "last": ("acc_sparse_last", "the last epoch of each level (the paper's protocol)"),
    "best_val": ("acc_sparse_at_best_val", "the epoch of best validation accuracy (chosen "
                 "on the held-out noisy labels, never on test)"),
    "tail_mean": ("acc_sparse_tail_mean", "the mean over the last 10 epochs of each level "
                  "(Co-teaching's and JoCoR's rule)"),
}


@dataclass(frozen=True)
class TableOptions:
    """What a table kind may read; each kind uses only its own fields."""

    metric: str = DEFAULT_METRIC
    report: str | None = None  # a REPORT_RULES key; sets `metric`
    base: dict[str, float] | None = None
    params: tuple[str, ...] = tuple(METHOD_PARAMS)
    rows: tuple[str, ...] | None = None  # None: the kind's own (sparsity: variant;
    # compare: method)
    sparsity: float | tuple[float, ...] | str | None = None  # compare: fraction(s) in [0, 1],
    # or "paper" (Tables I-III: competitors dense, TS3-Net at its highest level)
    evaluator: str = "fanova"
    select: str = "val_acc_sparse_last"  # pareto: the column that selects
    within: float = 1.0  # pareto: percentage points below the best for the pick


@dataclass
class Trials:
    """Full-budget levels rows (scaled metric in `_value`) and the notes they produce."""

    rows: pd.DataFrame
    unit: str
    notes: list[str] = field(default_factory=list)


def report_rule(opts: TableOptions) -> str:
    """The header line saying which epoch the table reports."""
    for name, (column, text) in REPORT_RULES.items():
        if opts.metric == column:
            return f"reported: {text} (--report {name})"
    return f"reported: the levels column {opts.metric}"


def with_report(opts: TableOptions) -> TableOptions:
    """`--report` resolved into the metric (refused beside a different --metric)."""
    if opts.report is None:
        return opts
    if opts.report not in REPORT_RULES:
        raise UserError(f"--report={opts.report!r} is not allowed: one of {', '.join(REPORT_RULES)}")
    column = REPORT_RULES[opts.report][0]
    if opts.metric not in (DEFAULT_METRIC, column):
        raise UserError(f"--report {opts.report} and --metric {opts.metric} contradict each "
                        f"other: --report {opts.report} reports {column}; give one of them")
    return replace(opts, metric=column)


def full_budget(levels: pd.DataFrame, opts: TableOptions, required, what: str) -> Trials:
    """Check columns and metric, drop early-stopped trials, scale the metric to percent."""
    check_metric(levels, opts.metric, "levels")
    if opts.metric == REPORT_RULES["best_val"][0] and levels[opts.metric].isna().all():
        raise UserError(f"{what}: --report best_val needs validation data, and these runs "
                        "held out none (val_fraction=0): use --report last or tail_mean")
    df = prepare(levels, "levels", required, what)
    df, n_stopped = drop_early_stopped(df)
    if df.empty:
        raise UserError(f"{what}: RESULTS holds no full-budget trials "
                        f"({n_stopped} early-stopped trials left out)")
    factor, unit = percent_scale(df[opts.metric])
    df = df.assign(_value=df[opts.metric].astype(float) * factor)
    notes = selection_notes(df)
    notes += [f"{n_stopped} early-stopped trials left out"] if n_stopped else []
    return Trials(df, unit, notes)


def display_order(column: str, values) -> list:
    """Distinct values in display order: paper order for variants and methods (Tables I-III:
    baseline, competitors, TS3-Net (dense), TS3-Net), natural order otherwise."""
    distinct = list(dict.fromkeys(values))
    if column == "variant":
        rank = {v: i for i, v in enumerate(VARIANT_ORDER)}
        return sorted(distinct, key=lambda v: (rank.get(v, len(rank)), str(v)))
    if column in ("method", METHOD):
        return sorted(distinct, key=method_rank)
    return sorted(distinct, key=lambda v: (str(type(v)), v))


def finish(model: TableModel, opts: TableOptions) -> TableModel:
    """The report rule first among the notes, the seed counts and marks after them."""
    rows = [b.rows for b in model.blocks]
    model.footnotes = [report_rule(opts), *model.footnotes, *count_notes(rows)]
    model.show_n = cells_differ_in_n(rows)
    return model


def _cell(trials: pd.DataFrame, what: str, where: str) -> Cell:
    """The pooled cell of trials that must differ in the seed alone."""
    require_one_configuration(trials, what, where)
    return pooled_cell(trials)


# -- Table IX: parameter sensitivity ----------------------------------------------------

def format_param(name: str, value: float) -> str:
    """Row label of a parameter value: integers for E1/E2, else two decimals (as Table IX)
    unless the value needs more (0.125)."""
    if METHOD_PARAMS[name].integer:
        return f"{int(round(value))}"
    return f"{value:.2f}" if round(value, 2) == value else f"{value:g}"


def infer_base(trials: pd.DataFrame, params, given: dict[str, float] | None) -> dict[str, float]:
    """Base configuration: `given` values, else the most common value of each parameter."""
    base = dict(given or {})
    for p in params:
        if p in base:
            continue
        counts = trials[p].astype(float).value_counts()
        top = counts[counts == counts.max()].index
        if len(top) > 1:
            tied = " and ".join(f"{v:g}" for v in sorted(top))
            raise UserError(f"sensitivity: cannot infer the base value of {p} ({tied} are "
                            f"equally common); pass --base {p}=VALUE")
        base[p] = float(top[0])
    return base


def _close(series: pd.Series, value: float) -> pd.Series:
    return pd.Series(np.isclose(series.astype(float), value, rtol=0, atol=1e-9),
                     index=series.index)


def sensitivity_table(levels: pd.DataFrame, opts: TableOptions) -> TableModel:
    """Table IX: a block per parameter with the other parameters held at the base."""
    opts = with_report(opts)
    what = "sensitivity"
    trials = full_budget(levels, opts, opts.params, what)
    final = final_level(trials.rows)
    for p in opts.params:
        distinct = sorted(final[p].astype(float).unique())
        if len(distinct) < 2:
            raise UserError(f"{what}: parameter {p} has one value ({distinct[0]:g}) in RESULTS; "
                            "the sweep does not vary it (choose others with --params)")
    held = [p for p in METHOD_PARAMS if p in final.columns]  # every searched parameter
    base = infer_base(final, held, opts.base)
    settings = settings_in_order(final)
    blocks = []
    for letter, p in zip("abcdefghij", opts.params):
        mask = np.ones(len(final), dtype=bool)
        for q in held:
            if q != p:
                mask &= _close(final[q], base[q]).to_numpy()
        block_rows = final[mask]
        rows = []
        for value in sorted(block_rows[p].astype(float).unique()):
            at_value = block_rows[_close(block_rows[p], value)]
            cells = [_cell(at_value[at_value["_setting"] == s], what,
                           f"{p}={format_param(p, value)} in {s}") for s in settings]
            rows.append(Row(format_param(p, value), cells))
        mark_best(rows)
        sym = METHOD_PARAMS[p]
        title = Label(f"({letter}) Influence of {p}", f"({letter}) Influence of {sym.md}",
                      f"({letter}) Influence of {sym.latex}")
        blocks.append(Block(p, title, Label(p, sym.md, sym.latex),
                            [Label(s) for s in settings], rows))
    base_text = ", ".join(f"{p}={format_param(p, v)}" for p, v in base.items())
    notes = [f"{opts.metric} of each trial's highest sparsity level{trials.unit}; "
             f"best value per column and block marked",
             f"base configuration: {base_text}", *trials.notes]
    return finish(TableModel(f"Parameter sensitivity: {opts.metric}{trials.unit}",
                             "parameter", "value", blocks, notes), opts)


# -- Tables VIII / XI: accuracy per sparsity level --------------------------------------

def level_label(percent: float) -> str:
    """Column header of a sparsity level in percent: 87.5, 0, 93.6."""
    return f"{percent:g}"


def block_order(df: pd.DataFrame, column: str) -> list:
    """Distinct values of `column` in display order (settings by dataset, noise, rate)."""
    if column == "_setting":
        return settings_in_order(df)
    return display_order(column, df[column])


def _group_blocks(df: pd.DataFrame, block_keys: list[str]):
    """(block key text, its rows) per distinct combination of `block_keys`, in order."""
    ranks = {k: {v: i for i, v in enumerate(block_order(df, k))} for k in block_keys}
    combos = list(df[block_keys].drop_duplicates().itertuples(index=False, name=None))
    combos.sort(key=lambda combo: tuple(ranks[k][v] for k, v in zip(block_keys, combo)))
    for combo in combos:
        mask = np.logical_and.reduce([(df[k] == v).to_numpy() for k, v in zip(block_keys, combo)])
        yield ", ".join(str(v) for v in combo), df[mask]


def sparsity_table(levels: pd.DataFrame, opts: TableOptions) -> TableModel:
    """Tables VIII / XI: mean ± std of the metric per row key and sparsity level."""
    opts = with_report(opts)
    what = "sparsity"
    row_keys = opts.rows or ("variant",)
    trials = full_budget(levels, opts, ["sparsity", *row_keys], what)
    df = drop_repeated_dense_levels(trials.rows)
    df = df.assign(_level=(df["sparsity"].astype(float) * 100).round(1))
    row_key, block_keys = row_keys[-1], ["_setting", *row_keys[:-1]]
    blocks = []
    for key, part in _group_blocks(df, block_keys):
        levels_in = sorted(part["_level"].unique())
        rows = []
        for value in display_order(row_key, part[row_key]):
            mine = part[part[row_key] == value]
            rows.append(Row(str(value), [
                _cell(mine[mine["_level"] == lv], what, f"{key}, {row_key}={value}, {lv:g}%")
                for lv in levels_in]))
        mark_best(rows)
        blocks.append(Block(key, Label(key), Label(row_key),
                            [Label(level_label(lv)) for lv in levels_in], rows))
    notes = [f"columns: sparsity (%) of the IMP level (rounded to 0.1); cells: {opts.metric}"
             f"{trials.unit}; best value per column and block marked",
             *trials.notes]
    return finish(TableModel(f"Accuracy vs sparsity: {opts.metric}{trials.unit}",
                             "/".join(["setting", *row_keys[:-1]]), row_key, blocks, notes), opts)


# -- Tables I-III: methods x noise settings, with parameter counts ----------------------

METHOD = "_method"  # derived row label: the method, TS3-Net's variant, "ts3net (dense)"
TS3NET = "ts3net"
DENSE_SUFFIX = " (dense)"
PAPER_LEVELS = "paper"  # competitors dense, TS3-Net at its highest level (Tables I-III)


def method_label(method: str, variant: str | None) -> str:
    """Row label of a trial: its method; TS3-Net's ablation variants as `ts3net (warm)`."""
    if method == TS3NET and variant not in (None, "full") and isinstance(variant, str):
        return f"{TS3NET} ({variant})"
    return str(method)


def method_rank(label: str) -> tuple:
    """Table I order: ce (baseline), sce, apl, mae, itlm, coteaching, jocor, dividemix, then
    TS3-Net's variants, TS3-Net (dense), TS3-Net; unknown labels last, by name."""
    base, _, rest = str(label).partition(" (")
    rank = {m: i for i, m in enumerate(METHOD_NAMES)}
    if base != TS3NET or not rest:
        return (rank.get(base, len(rank)), 2, str(label))
    inner = rest.rstrip(")")
    if inner == "dense":
        return (rank[TS3NET], 1, "")
    variants = {v: i for i, v in enumerate(VARIANT_ORDER)}
    return (rank[TS3NET], 0, f"{variants.get(inner, len(variants)):03d}{inner}")


def add_method_labels(df: pd.DataFrame) -> pd.DataFrame:
    """Add `_method` (see method_label). Results without a `method` column are TS3-Net's
    (written before methods existed)."""
    methods = df["method"] if "method" in df.columns else pd.Series(TS3NET, index=df.index)
    variants = df["variant"] if "variant" in df.columns else pd.Series(None, index=df.index)
    return df.assign(**{METHOD: [method_label(m, v) for m, v in zip(methods, variants)]})


def dense_counterpart(metric: str) -> str | None:
    """The column holding D's value of an S metric: acc_sparse_last -> acc_dense_last."""
    return metric.replace("sparse", "dense", 1) if "acc_sparse" in metric else None


LEVEL_TOLERANCE = 0.005  # a trial's level belongs to a block's level within 0.5 points


def _pick_levels(rows: pd.DataFrame, sparsity) -> tuple[list[tuple[str, pd.DataFrame]], list]:
    """(block name, one levels row per trial) per requested level, and notes. A requested
    sparsity picks the recorded level nearest it; trials without that level (e.g. a dense-
    only run in the 87.5% block) are left out of the block and counted in a note."""
    if sparsity is None:
        return [("", final_level(rows))], []
    if sparsity == PAPER_LEVELS:
        ts3 = rows[METHOD].str.startswith(TS3NET)
        picked = pd.concat([final_level(rows[~ts3], 0.0), final_level(rows[ts3])])
        return [("", picked)], []
    wanted = sparsity if isinstance(sparsity, tuple) else (sparsity,)
    recorded = rows["sparsity"].astype(float).unique()
    out, notes = [], []
    for target in wanted:
        level = float(recorded[np.argmin(np.abs(recorded - target))])
        final = final_level(rows, level)
        near = (final["sparsity"].astype(float) - level).abs() <= LEVEL_TOLERANCE
        name = f"{level_label(round(level * 100, 1))}%"
        if (~near).any():
            notes.append(f"{int((~near).sum())} trial(s) without a level at {name} sparsity "
                         f"left out of that block ({', '.join(sorted(set(final.loc[~near, METHOD])))})")
        out.append((name, final[near]))
    return out, notes


def compare_table(levels: pd.DataFrame, opts: TableOptions) -> TableModel:
    """Tables I-III: the metric per method (row) and noise setting (column), a block per
    dataset and requested sparsity level, mean ± std over seeds, best per column marked.

    Params (M) is the paper's convention, total parameters x (1 - sparsity), with sparsity
    the pruned share of the prunable weights; Non-zero is the exact count of S's non-zero
    parameters (weights, biases, BatchNorm). TS3-Net rows come with a `ts3net (dense)` row:
    D's value of the metric (its dense peer, `acc_dense_*`), Params = total parameters."""
    what = "compare"
    opts = with_report(opts)
    custom_rows = opts.rows is not None
    required = ["sparsity", "total_params", "nonzero_params", *(opts.rows or ())]
    trials = full_budget(levels, opts, required, what)
    rows = add_method_labels(trials.rows)
    row_keys = opts.rows or (METHOD,)
    row_key = row_keys[-1]
    dense_metric = dense_counterpart(opts.metric)
    blocks, used = [], set()
    picked, level_notes = _pick_levels(rows, opts.sparsity)
    for level_name, final in picked:
        used.update((final["sparsity"].astype(float) * 100).round(1))
        final = final.assign(
            _noise=[setting_label(d, n, r, with_dataset=False) for d, n, r in
                    zip(final["dataset"], final["noise"], final["noise_rate"])],
            _params=final["total_params"].astype(float) * (1 - final["sparsity"].astype(float)),
            _nonzero=final["nonzero_params"].astype(float))
        if not custom_rows and dense_metric in final.columns:
            final = pd.concat([final, _dense_rows(final, dense_metric, trials.unit)])
        for key, part in _group_blocks(final, ["dataset", *row_keys[:-1]]):
            noises = list(dict.fromkeys(part.sort_values(["noise", "noise_rate"])["_noise"]))
            part = split_configurations(part, row_key, ["_noise"])  # never pool configurations
            table_rows = []
            for value in display_order(row_key, part[row_key]):
                mine = part[part[row_key] == value]
                cells = [pooled_cell(mine[mine["_noise"] == n]) for n in noises]
                cells += [_count(mine["_params"] / 1e6, None), _count(mine["_nonzero"], 0)]
                table_rows.append(Row(str(value), cells))
            mark_best(table_rows, columns=list(range(len(noises))))
            mark_significance(table_rows, columns=list(range(len(noises))))
            columns = [Label(n) for n in noises] + [Label(t) for t in PARAM_HEADERS]
            name = ", ".join(filter(None, [key, level_name]))
            blocks.append(Block(name, Label(name), Label("method" if row_key == METHOD
                                                         else row_key), columns, table_rows))
    where = {None: "each trial's highest sparsity level",
             PAPER_LEVELS: "level 0 (dense) of every competitor and the highest level of "
                           "TS3-Net (the layout of the paper's Tables I-III)"}
    level_text = where.get(opts.sparsity) if not isinstance(opts.sparsity, (float, tuple)) \
        else "the recorded level nearest each requested sparsity"
    notes = [f"{opts.metric}{trials.unit} at {level_text} (sparsity used: "
             f"{', '.join(level_label(v) for v in sorted(used))}%); best value per noise "
             "column marked",
             "Params (M): total parameters x (1 - sparsity), the paper's convention (sparsity "
             "= pruned share of the prunable weights); Non-zero: exact count of S's non-zero "
             "parameters, biases included; both averaged over the row's trials",
             *level_notes, *trials.notes, *protocol_notes(rows)]
    if not custom_rows and dense_metric is not None:
        notes.insert(1, f"ts3net (dense): TS3-Net's dense peer D ({dense_metric}), in the "
                        "same trials")
    return finish(TableModel(f"Comparison: {opts.metric}{trials.unit}",
                             "/".join(["dataset", *(opts.rows or ())[:-1]]) + "/sparsity",
                             "method" if row_key == METHOD else row_key, blocks, notes), opts)


def protocol_notes(rows: pd.DataFrame) -> list[str]:
    """Which protocol(s) trained the methods, and which methods inside IMP extend the
    paper's own protocol (Sec. IV-C-4 ran SCE, MAE, APL, ITLM and Co-teaching inside IMP)."""
    from ts3ray.method.names import IN_PAPER_IMP, PROTOCOLS

    notes = []
    if "protocol" in rows.columns:
        for name in sorted(set(rows["protocol"].dropna().astype(str))):
            notes.append(f"protocol {name}: {PROTOCOLS.get(name, name)}")
    else:
        notes.append("protocol: not recorded (results written before protocols; every "
                     "method trained with the run's SGD)")
    if "method" in rows.columns and (rows.get("rounds", pd.Series([0])).astype(int) > 0).any():
        extended = sorted(set(rows["method"].astype(str)) - set(IN_PAPER_IMP))
        if extended:
            notes.append(f"{', '.join(extended)} inside IMP: ts3ray's extension of the paper's "
                         "protocol (it ran SCE, MAE, APL, ITLM and Co-teaching inside IMP)")
    return notes


PARAM_HEADERS = ("Params (M)", "Non-zero")


def _dense_rows(final: pd.DataFrame, dense_metric: str, unit: str) -> pd.DataFrame:
    """TS3-Net's D as rows of its own: `ts3net (dense)`, dense parameter counts."""
    ts3 = final[(final[METHOD] == TS3NET) & final[dense_metric].notna()]
    factor = 100.0 if unit else 1.0
    return ts3.assign(**{METHOD: TS3NET + DENSE_SUFFIX,
                         "_value": ts3[dense_metric].astype(float) * factor,
                         "_params": ts3["total_params"].astype(float),
                         "_nonzero": np.nan})  # D's own count is not recorded


def _count(values: pd.Series, decimals: int | None) -> Cell:
    """Mean of a parameter count over the row's trials, no std; `decimals` None: two, or
    as many as two significant digits need (0.28, 17.30, 0.033 for MNIST's 87.5% ticket)."""
    cell = summarize(values.astype(float))
    if decimals is None and cell.mean:
        decimals = max(2, 1 - math.floor(math.log10(abs(cell.mean))))
    cell.std, cell.decimals = None, decimals
    return cell


# -- Tables IV-VI: real-world noisy data ------------------------------------------------

# Columns (header, levels column) per dataset; every other dataset gets Table IV's one column.
REALWORLD_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    # Table V: test accuracy at the epoch of best clean-validation accuracy, and at the last
    "clothing1m": (("Best", "acc_sparse_at_best_clean_val"), ("Last", "acc_sparse_last")),
    # Table VI: top-1 / top-5 on WebVision's validation set and on ILSVRC12's
    "webvision50": (("WebVision top-1", "acc_sparse_last"), ("WebVision top-5", "top5_sparse_last"),
                    ("ILSVRC12 top-1", "acc_sparse_ilsvrc12_val_last"),
                    ("ILSVRC12 top-5", "top5_sparse_ilsvrc12_val_last")),
}
REALWORLD_DEFAULT = (("Accuracy", "acc_sparse_last"),)  # Table IV (ANIMAL-10N), CIFAR-N


def realworld_table(levels: pd.DataFrame, opts: TableOptions) -> TableModel:
    """Tables IV-VI: a block per dataset and level, a row per method, the dataset's own
    columns (REALWORLD_COLUMNS), mean ± std over seeds in percent, best per column marked."""
    what = "realworld"
    trials = full_budget(levels, TableOptions(metric="acc_sparse_last"), ["sparsity"], what)
    rows = add_method_labels(trials.rows)
    blocks, used = [], set()
    picked, level_notes = _pick_levels(rows, opts.sparsity)
    for level_name, final in picked:
        used.update((final["sparsity"].astype(float) * 100).round(1))
        for dataset, part in _group_blocks(final, ["dataset"]):
            columns = REALWORLD_COLUMNS.get(dataset, REALWORLD_DEFAULT)
            require_columns(part, [c for _, c in columns], "levels", f"{what} ({dataset})")
            table_rows = []
            for value in display_order(METHOD, part[METHOD]):
                mine = part[part[METHOD] == value]
                require_one_configuration(mine, what, f"{dataset}, {value}")
                table_rows.append(Row(str(value), [pooled_cell(mine.assign(_value=mine[c].astype(float) * 100))
                                                   for _, c in columns]))
            mark_best(table_rows)
            name = ", ".join(filter(None, [dataset, level_name]))
            blocks.append(Block(name, Label(name), Label("method"),
                                [Label(h) for h, _ in columns], table_rows))
    notes = [f"test accuracy (%) at each trial's {'highest sparsity level' if opts.sparsity is None else 'requested level'}"
             f" (sparsity used: {', '.join(level_label(v) for v in sorted(used))}%); best value "
             "per column marked",
             "Clothing1M: Best = at the epoch of best accuracy on its clean validation set, "
             "Last = the last epoch (Table V); WebVision: top-1 / top-5 on WebVision's and on "
             "ILSVRC12's validation images (Table VI)",
             *level_notes, *trials.notes]
    rows_by_block = [b.rows for b in blocks]
    notes += count_notes(rows_by_block)
    return TableModel("Real-world noisy labels: test accuracy (%)", "dataset/sparsity", "method",
                      blocks, notes)
