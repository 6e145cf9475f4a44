"""The accuracy-sparsity front of a sweep: which tickets are worth keeping.

Every trial records all of its IMP levels, so a sweep already holds one (accuracy, sparsity)
point per trial and level. A point is on the front when no other point of the same setting is
at least as sparse and at least as accurate (one of them strictly). Validation accuracy
*selects* (the front and the pick are computed on `select`, by default the level's last-epoch
S accuracy on the held-out noisy labels); test accuracy is only *reported* beside it.

"The sparsest ticket within X points": among the points whose selection accuracy is at most
X percentage points below the setting's best, the sparsest (ties: the more accurate).

Levels of trials that ASHA stopped count too: each level a trial finished is a complete
lottery-ticket result at that sparsity.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ts3ray.config import METHOD_PARAMS
from ts3ray.errors import UserError
from ts3ray.results.load import check_metric, prepare, selection_notes, settings_in_order
from ts3ray.results.table_model import Block, Cell, Label, Row, TableModel

DEFAULT_SELECT = "val_acc_sparse_last"
REPORTED = "acc_sparse_last"
DEFAULT_WITHIN = 1.0  # percentage points


@dataclass(frozen=True)
class Front:
    """Per setting: every point, the front (by sparsity, ascending) and the pick."""

    setting: str
    points: pd.DataFrame
    front: pd.DataFrame
    pick: pd.Series


def pareto_front(points: pd.DataFrame, select: str) -> pd.DataFrame:
    """The non-dominated points in (sparsity up, `select` up), sorted by sparsity."""
    order = points.sort_values(["sparsity", select], ascending=[False, False], kind="stable")
    kept, best = [], float("-inf")
    for index, value in zip(order.index, order[select].astype(float)):
        if value > best:  # more accurate than every sparser-or-equal point seen so far
            kept.append(index)
            best = value
    return points.loc[kept].sort_values("sparsity", kind="stable")


def sparsest_within(points: pd.DataFrame, select: str, within_points: float) -> pd.Series:
    """The sparsest point whose `select` is within `within_points` (percent) of the best."""
    best = points[select].astype(float).max()
    close = points[points[select].astype(float) >= best - within_points / 100.0 - 1e-12]
    ranked = close.sort_values(["sparsity", select], ascending=[False, False], kind="stable")
    return ranked.iloc[0]


def fronts(levels: pd.DataFrame, select: str = DEFAULT_SELECT,
           within_points: float = DEFAULT_WITHIN) -> tuple[list[Front], list[str]]:
    """One Front per setting, and the notes every table or plot of them carries."""
    what = "pareto"
    parse_within(within_points)
    check_metric(levels, select, "levels")
    df = prepare(levels, "levels", ["sparsity", select, REPORTED], what)
    df = df[df[select].notna()]
    if df.empty:
        hint = (" (the sweep ran without a validation split, val_fraction=0; pass "
                f"--select {REPORTED} to build the front on test accuracy, marked as such)"
                if select.startswith("val_") else "")
        raise UserError(f"{what}: no level has a value of {select}{hint}")
    result = []
    for setting in settings_in_order(df):
        points = df[df["_setting"] == setting]
        result.append(Front(setting, points, pareto_front(points, select),
                            sparsest_within(points, select, within_points)))
    notes = [f"front and pick by {select}; test accuracy ({REPORTED}) reported only"
             if not select.startswith("acc_") else
             f"selected on test: the front and the pick use test accuracy ({select})",
             f"pick: the sparsest level within {within_points:g} points of the best {select}",
             "every finished level of every trial counts, early-stopped trials included",
             *selection_notes(df)]
    return result, notes


def describe(point: pd.Series) -> str:
    """A short label of a point: what it is and where it comes from."""
    params = " ".join(f"{METHOD_PARAMS[p].md}={point[p]:.3g}" for p in METHOD_PARAMS
                      if p in point.index)
    variant = f"{point['variant']} " if "variant" in point.index else ""
    pf = f" p_f={point['prune_fraction']:g}" if "prune_fraction" in point.index else ""
    return f"{variant}{params}{pf} level {int(point['round'])} ({point['_trial']})"


def add_front_arguments(parser) -> None:
    parser.add_argument("--select", help=f"pareto, rungs: the column that selects (default "
                                         f"{DEFAULT_SELECT}; a test column is marked as such)")
    parser.add_argument("--within", help=f"pareto: the pick is the sparsest level within this "
                                         f"many points of the best (default {DEFAULT_WITHIN:g})")


def parse_within(text) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = float("nan")
    if not value >= 0 or value == float("inf"):
        raise UserError(f"--within={text!r} is not allowed: a number of percentage points >= 0")
    return value


def pareto_table(levels: pd.DataFrame, opts) -> TableModel:
    """`ts3ray table pareto`: per setting, the front's points by sparsity; the pick in bold."""
    found, notes = fronts(levels, opts.select, opts.within)
    shown = [opts.select] + ([REPORTED] if opts.select != REPORTED else [])  # test once
    blocks = []
    for f in found:
        rows = []
        for index, point in f.front.iterrows():
            cells = [Cell(100 * float(point["sparsity"])),
                     *(Cell(100 * float(point[column])) for column in shown)]
            if index == f.pick.name:
                for cell in cells:
                    cell.best = True
            rows.append(Row(describe(point), cells))
        columns = [Label("sparsity (%)"), *(Label(f"{column} (%)") for column in shown)]
        blocks.append(Block(f.setting, Label(f"{f.setting}: {len(f.front)} of {len(f.points)} "
                                             "levels on the front"),
                            Label("ticket"), columns, rows))
    test = lambda f: "" if opts.select == REPORTED else f", test {100 * f.pick[REPORTED]:.2f}%"
    picks = "; ".join(f"{f.setting}: {describe(f.pick)} at {100 * f.pick['sparsity']:.1f}% "
                      f"sparsity, {opts.select} {100 * f.pick[opts.select]:.2f}%{test(f)}"
                      for f in found)
    return TableModel(f"Accuracy-sparsity front (selected on {opts.select})", "setting", "ticket",
                      blocks, [*notes, f"bold = pick: {picks}"])


def plot_pareto(levels: pd.DataFrame, opts):
    """`ts3ray plot pareto`: a panel per setting; every level's selection accuracy (grey),
    the front (line), the test accuracy of the front's points (dashed), the pick (star)."""
    from ts3ray.results.plots import _panels, _style  # matplotlib only when plotting

    found, notes = fronts(levels, opts.select, opts.within)
    fig, axes = _panels(len(found))
    for ax, f in zip(axes, found):
        x = 100 * f.points["sparsity"].astype(float)
        ax.scatter(x, 100 * f.points[opts.select].astype(float), s=12, color="0.7",
                   label=f"every level ({len(f.points)})")
        fx = 100 * f.front["sparsity"].astype(float)
        # steps-pre: between two front points, the best accuracy at that sparsity or more is
        # the sparser point's
        noisy = " (noisy held-out labels)" if opts.select.startswith("val_") else ""
        ax.plot(fx, 100 * f.front[opts.select].astype(float), marker="o", drawstyle="steps-pre",
                label=f"front by {opts.select}{noisy}")
        ax.plot(fx, 100 * f.front[REPORTED].astype(float), marker="s", linestyle="--",
                label=f"{REPORTED} of the front (reported)")
        ax.plot([100 * f.pick["sparsity"]], [100 * f.pick[opts.select]], marker="*",
                markersize=16, color="crimson", linestyle="none",
                label=f"pick: sparsest within {opts.within:g} pts")
        _style(ax, f.setting, "sparsity (%)", "accuracy (%)")
    fig.suptitle(notes[0], fontsize="small")
    return fig
