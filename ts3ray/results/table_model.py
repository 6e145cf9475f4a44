"""A format-free table: blocks of rows of numeric cells, with best marks and footnotes.

Table builders (tables.py, importance.py) produce a `TableModel`; renderers (render.py) turn
any model into Markdown, CSV or LaTeX, so every table kind shares every format.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Label:
    """Text shown in a header; `md` / `latex` override the plain text in those formats."""

    plain: str
    md: str | None = None
    latex: str | None = None


@dataclass
class Cell:
    """A mean (None: no data), the sample std over trials (None: one trial), a best mark;
    `decimals` overrides the table's for this cell (e.g. 0 for an exact count). Cells pooled
    over seeds (results/pooling.py) also hold `n`, the value per seed (for paired tests) and
    a `mark` (a repeated seed, significantly below the best)."""

    mean: float | None
    std: float | None = None
    best: bool = False
    decimals: int | None = None
    n: int | None = None
    per_seed: dict[int, float] = field(default_factory=dict, repr=False)
    mark: str = ""


@dataclass
class Row:
    label: str
    cells: list[Cell]


@dataclass
class Block:
    """One sub-table, e.g. Table IX(a); `key` names it in CSV, `title` in Markdown/LaTeX."""

    key: str
    title: Label | None
    row_header: Label
    columns: list[Label]
    rows: list[Row]


@dataclass
class TableModel:
    title: str
    block_header: str  # CSV column holding the block key, e.g. "parameter"
    row_header: str  # CSV column holding the row label, e.g. "value"
    blocks: list[Block]
    footnotes: list[str] = field(default_factory=list)
    decimals: int = 2
    show_n: bool = False  # print each cell's seed count (cells differ in it)


def summarize(values) -> Cell:
    """Mean and sample std (ddof=1) of the finite values; std None for a single value."""
    arr = np.asarray(list(values), dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return Cell(None)
    std = float(np.std(arr, ddof=1)) if arr.size > 1 else None
    return Cell(float(np.mean(arr)), std)


def mark_best(rows: list[Row], columns: list[int] | None = None) -> None:
    """Mark the highest mean of each column (ties: all of them), in place."""
    width = max((len(r.cells) for r in rows), default=0)
    for col in range(width) if columns is None else columns:
        means = [r.cells[col].mean for r in rows if r.cells[col].mean is not None]
        if not means:
            continue
        top = max(means)
        for r in rows:
            m = r.cells[col].mean
            r.cells[col].best = m is not None and math.isclose(m, top, rel_tol=1e-12, abs_tol=1e-12)
