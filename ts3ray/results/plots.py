"""Paper-style figures from Parquet results, drawn headless with matplotlib's Figure API.

Every function takes a DataFrame (a `levels` or `epochs` table as read by load.py) and
returns a `matplotlib.figure.Figure`, one panel (axes) per setting unless said otherwise:

* `plot_sparsity` — accuracy vs sparsity per variant / arch (Fig. 4)
* `plot_compare`  — accuracy vs sparsity, one line per method (Figs. 7-10)
* `plot_curves`   — S (solid) and D (dashed) test accuracy vs global epoch (Figs. 3, 5, 6)
* `plot_precision` — label precision and relabel accuracy vs epoch, two panels (Fig. 11)
* `plot_search`   — parallel coordinates of lam, tau, gamma, e1, e2 coloured by the metric

Fractions in [0, 1] are drawn as percent. Sparsity and search plots use full-budget
trials only (like the tables); curves and precision plots show every trial.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from ts3ray.config import METHOD_PARAMS
from ts3ray.errors import ConfigError, UserError
from ts3ray.results.load import (
    TRIAL, check_metric, drop_early_stopped, drop_repeated_dense_levels,
    final_level, percent_scale,
    prepare, require_columns, settings_in_order,
)
from ts3ray.results.tables import METHOD, DEFAULT_METRIC, add_method_labels, display_order

PANEL_SIZE = (5.0, 3.6)
MAX_LEGEND = 20  # more lines than this (e.g. --by trial on a big sweep): no legend


@dataclass(frozen=True)
class PlotOptions:
    metric: str = DEFAULT_METRIC
    by: tuple[str, ...] = ("variant",)  # line grouping; "trial" groups per trial
    round: int | str | None = None  # epochs plots: None = all rounds, "last", or an integer
    round_lines: bool = False  # curves: vertical lines at IMP round boundaries
    select: str = "val_acc_sparse_last"  # pareto: the column that selects
    within: float = 1.0  # pareto: percentage points below the best for the pick


def _panels(n: int, ncols: int | None = None) -> tuple[Figure, list]:
    ncols = ncols or min(n, 3)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(PANEL_SIZE[0] * ncols, PANEL_SIZE[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _group_column(df: pd.DataFrame, by: tuple[str, ...]) -> pd.DataFrame:
    """Add `_group`, the line label ('full', 'full / vgg16', or the trial id)."""
    keys = [TRIAL if k == "trial" else k for k in by]
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise UserError(f"--by: column(s) {', '.join(missing)} not in the results "
                        "(use trial, variant, arch or another config column)")
    labels = df[keys[0]].astype(str)
    for k in keys[1:]:
        labels = labels + " / " + df[k].astype(str)
    ranks = [df[k].map({v: i for i, v in enumerate(display_order(k, df[k]))}) for k in keys]
    return df.assign(_group=labels, _group_order=list(zip(*ranks)))


def _groups(df: pd.DataFrame):
    """(label, rows) per line group, in display order."""
    parts = sorted(df.groupby("_group", sort=False), key=lambda kv: kv[1]["_group_order"].iloc[0])
    yield from parts


def _style(ax, title: str, xlabel: str, ylabel: str) -> None:
    """Title, axis labels, a light grid and the legend: the look every panel shares."""
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    _legend(ax)


def _legend(ax) -> None:
    """A legend beside the panel (inside, it hid the lines of crowded plots: 9 methods
    within 10 points of each other), unless there are too many lines to read one."""
    named = [l for l in ax.get_lines() if not l.get_label().startswith("_")]
    if 0 < len(named) <= MAX_LEGEND:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0),
                  borderaxespad=0.0)


def parse_round(which) -> int | str:
    """An IMP round as an integer, or 'last' (each trial's highest round)."""
    if which == "last":
        return which
    try:
        return int(which)
    except (TypeError, ValueError):
        raise ConfigError("--round", which, "an integer round or 'last'") from None


def _select_round(df: pd.DataFrame, which) -> pd.DataFrame:
    if which is None:
        return df
    which = parse_round(which)
    if which == "last":
        return df[df["round"] == df.groupby(TRIAL)["round"].transform("max")]
    return df[df["round"] == which]


def _nonempty(df: pd.DataFrame, what: str) -> pd.DataFrame:
    if df.empty:
        raise UserError(f"plot {what}: no rows left to plot in RESULTS")
    return df


def plot_sparsity(levels: pd.DataFrame, opts: PlotOptions = PlotOptions()) -> Figure:
    """Accuracy (%) vs sparsity (%), a line with markers per group, error bars over seeds."""
    df = prepare(levels, "levels", ["sparsity", opts.metric], "plot sparsity")
    check_metric(df, opts.metric, "levels")
    df, n_stopped = drop_early_stopped(df)
    df = _group_column(_nonempty(drop_repeated_dense_levels(df), "sparsity"), opts.by)
    factor, unit = percent_scale(df[opts.metric])
    df = df.assign(_x=(df["sparsity"].astype(float) * 100).round(1),
                   _y=df[opts.metric].astype(float) * factor)
    settings = settings_in_order(df)
    fig, axes = _panels(len(settings))
    for ax, setting in zip(axes, settings):
        for label, part in _groups(df[df["_setting"] == setting]):
            stats = part.groupby("_x")["_y"].agg(["mean", "std", "count"]).reset_index()
            line, = ax.plot(stats["_x"], stats["mean"], marker="o", label=label)
            if (stats["count"] > 1).any():
                ax.errorbar(stats["_x"], stats["mean"], yerr=stats["std"].fillna(0.0),
                            fmt="none", ecolor=line.get_color(), capsize=3)
        _style(ax, setting, "sparsity (%)", f"test accuracy{unit}" if unit else opts.metric)
    if n_stopped:
        fig.suptitle(f"{n_stopped} early-stopped trials left out", fontsize="small")
    return fig


def plot_compare(levels: pd.DataFrame, opts: PlotOptions = PlotOptions()) -> Figure:
    """Figs. 7-10: test accuracy (%) vs sparsity (%), one line per method (TS3-Net's
    variants as lines of their own), a panel per setting, error bars over seeds."""
    require_columns(levels, ["run_id", "round", "sparsity"], "levels", "plot compare")
    return plot_sparsity(add_method_labels(levels), dataclasses.replace(opts, by=(METHOD,)))


def plot_curves(epochs: pd.DataFrame, opts: PlotOptions = PlotOptions()) -> Figure:
    """Test accuracy of S (solid) and D (dashed, where recorded) vs global epoch."""
    df = prepare(epochs, "epochs", ["global_epoch", "acc_sparse"], "plot curves")
    df = _group_column(_nonempty(_select_round(df, opts.round), "curves"), opts.by)
    has_dense = "acc_dense" in df.columns
    factor, unit = percent_scale(pd.concat([df["acc_sparse"],
                                            df["acc_dense"] if has_dense else df["acc_sparse"]]))
    settings = settings_in_order(df)
    fig, axes = _panels(len(settings))
    for ax, setting in zip(axes, settings):
        here = df[df["_setting"] == setting]
        for label, part in _groups(here):
            mean = part.groupby("global_epoch")[["acc_sparse"] + (["acc_dense"] if has_dense else [])]
            mean = mean.mean().sort_index() * factor
            line, = ax.plot(mean.index, mean["acc_sparse"], label=f"{label} (S)")
            if has_dense and mean["acc_dense"].notna().any():
                ax.plot(mean.index, mean["acc_dense"], linestyle="--", color=line.get_color(),
                        label=f"{label} (D)")
        if opts.round_lines:
            starts = here.groupby("round")["global_epoch"].min().sort_index().iloc[1:]
            for x in starts:  # first epoch of each IMP round after the first
                ax.axvline(x - 0.5, color="grey", linewidth=0.8, linestyle=":",
                           label="_round boundary")
        _style(ax, setting, "epoch", f"test accuracy{unit}")
    return fig


PRECISION_PANELS = (("label_precision", "label precision"),
                    ("relabel_accuracy", "pseudo-label accuracy"))


def plot_precision(epochs: pd.DataFrame, opts: PlotOptions = PlotOptions()) -> Figure:
    """Fig. 11: label precision (alternate stage) and relabel accuracy (refine stage)."""
    columns = [c for c, _ in PRECISION_PANELS]
    df = prepare(epochs, "epochs", ["global_epoch", *columns], "plot precision")
    df = _nonempty(_select_round(df, opts.round), "precision")
    by = opts.by if len(df["_setting"].unique()) == 1 else ("_setting", *opts.by)
    df = _group_column(df, by)
    fig, axes = _panels(len(PRECISION_PANELS), ncols=2)
    for ax, (column, name) in zip(axes, PRECISION_PANELS):
        factor, unit = percent_scale(df[column])
        for label, part in _groups(df[df[column].notna()]):
            mean = part.groupby("global_epoch")[column].mean() * factor
            epochs = np.arange(int(mean.index.min()), int(mean.index.max()) + 1)
            mean = mean.reindex(epochs)  # NaN gaps break the line between stages
            ax.plot(mean.index, mean.to_numpy(), marker=".", label=label)
        _style(ax, name, "epoch", f"{name}{unit}")
    return fig


def plot_search(levels: pd.DataFrame, opts: PlotOptions = PlotOptions()) -> Figure:
    """Parallel coordinates: one line per full-budget trial over lam..e2 and the metric."""
    params = list(METHOD_PARAMS)
    df = prepare(levels, "levels", [*params, opts.metric], "plot search")
    check_metric(df, opts.metric, "levels")
    df, n_stopped = drop_early_stopped(df)
    final = _nonempty(final_level(df), "search")
    final = final[final[opts.metric].notna()]
    factor, unit = percent_scale(final[opts.metric])
    axes_names = [*params, opts.metric]
    values = final[params].astype(float).assign(**{opts.metric: final[opts.metric] * factor})
    low, high = values.min(), values.max()
    span = (high - low).replace(0.0, 1.0)
    scaled = (values - low) / span
    norm = Normalize(values[opts.metric].min(), values[opts.metric].max())
    cmap = "viridis"
    fig = Figure(figsize=(8.0, 4.5), layout="constrained")
    ax = fig.subplots()
    xs = np.arange(len(axes_names))
    mappable = ScalarMappable(norm=norm, cmap=cmap)
    for (_, row), (_, raw) in zip(scaled.iterrows(), values.iterrows()):
        ax.plot(xs, row.to_numpy(), color=mappable.to_rgba(raw[opts.metric]), alpha=0.7,
                linewidth=1.0, label="_trial")
    for x, name in zip(xs, axes_names):
        ax.axvline(x, color="black", linewidth=0.8, label="_axis")
        ax.text(x + 0.04, -0.04, f"{low[name]:g}", ha="left", va="top", fontsize="small")
        ax.text(x + 0.04, 1.04, f"{high[name]:g}", ha="left", va="bottom", fontsize="small")
    labels = [METHOD_PARAMS[p].md for p in params] + [f"{opts.metric}{unit}"]
    ax.set_xticks(xs, labels)
    ax.set_yticks([])
    ax.set_ylim(-0.12, 1.12)
    ax.set_title(f"search: {len(final)} full-budget trials"
                 + (f" ({n_stopped} early-stopped left out)" if n_stopped else ""))
    fig.colorbar(mappable, ax=ax, label=f"{opts.metric}{unit}")
    return fig
