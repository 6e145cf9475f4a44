"""Renderers of a `TableModel`: Markdown, CSV, LaTeX (registry `RENDERERS`).

Best cells: bold `**x**` (Markdown), `\\textbf{x}` (LaTeX), a `*` suffix (CSV). A cell with
several trials reads `mean ± std` (with `(n)` seeds when the cells differ in n) and its marks
(results/pooling.py); a cell without data is empty (`–` in Markdown).
"""
from __future__ import annotations

import csv
import io
from typing import Callable

from ts3ray.results.table_model import Cell, Label, TableModel

LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "±": r"$\pm$",
}


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in text)


def cell_text(cell: Cell, decimals: int, pm: str, show_n: bool = False) -> str:
    if cell.mean is None:
        return ""
    decimals = decimals if cell.decimals is None else cell.decimals
    text = f"{cell.mean:.{decimals}f}"
    text = text if cell.std is None else f"{text}{pm}{cell.std:.{decimals}f}"
    if show_n and cell.n:
        text += f" ({cell.n})"
    return text + cell.mark


def md_label(label: Label) -> str:
    return label.md if label.md is not None else label.plain


def latex_label(label: Label) -> str:
    return label.latex if label.latex is not None else latex_escape(label.plain)


def render_md(table: TableModel) -> str:
    lines = [f"**{table.title}**", ""]
    for block in table.blocks:
        if block.title is not None:
            lines += [md_label(block.title), ""]
        header = [md_label(block.row_header)] + [md_label(c) for c in block.columns]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" + "---:|" * len(block.columns))
        for row in block.rows:
            cells = []
            for cell in row.cells:
                text = cell_text(cell, table.decimals, " ± ", table.show_n) or "–"
                cells.append(f"**{text}**" if cell.best else text)
            lines.append("| " + " | ".join([row.label, *cells]) + " |")
        lines.append("")
    lines += [f"Note: {note}" for note in table.footnotes]
    return "\n".join(lines).rstrip("\n") + "\n"


def render_csv(table: TableModel) -> str:
    """One CSV table: block key, row label, then the union of block columns; `#` notes."""
    columns = list(dict.fromkeys(c.plain for b in table.blocks for c in b.columns))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    buf.write(f"# {table.title}\n")
    writer.writerow([table.block_header, table.row_header, *columns])
    for block in table.blocks:
        position = {c.plain: i for i, c in enumerate(block.columns)}
        for row in block.rows:
            out = []
            for name in columns:
                cell = row.cells[position[name]] if name in position else Cell(None)
                text = cell_text(cell, table.decimals, " ± ", table.show_n)
                out.append(f"{text}*" if cell.best and text else text)
            writer.writerow([block.key, row.label, *out])
    for note in table.footnotes:
        buf.write(f"# {note}\n")
    return buf.getvalue()


def render_latex(table: TableModel) -> str:
    """A booktabs tabular; each block gets a title row and its own header row."""
    width = 1 + max((len(b.columns) for b in table.blocks), default=0)
    lines = [f"% {table.title}", r"\begin{tabular}{l" + "r" * (width - 1) + "}", r"\toprule"]
    for i, block in enumerate(table.blocks):
        if i:
            lines.append(r"\midrule")
        if block.title is not None:
            lines.append(rf"\multicolumn{{{width}}}{{l}}{{{latex_label(block.title)}}} \\")
            lines.append(r"\midrule")
        header = [latex_label(block.row_header)] + [latex_label(c) for c in block.columns]
        lines.append(" & ".join(_pad(header, width)) + r" \\")
        lines.append(r"\midrule")
        for row in block.rows:
            cells = []
            for cell in row.cells:
                text = cell_text(cell, table.decimals, r" $\pm$ ", table.show_n)
                text = text.replace("†", r"$^\dagger$").replace("‡", r"$^\ddagger$")
                cells.append(rf"\textbf{{{text}}}" if cell.best and text else text)
            lines.append(" & ".join(_pad([latex_escape(row.label), *cells], width)) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [rf"\par{{\footnotesize {latex_escape(note)}}}" for note in table.footnotes]
    return "\n".join(lines) + "\n"


def _pad(cells: list[str], width: int) -> list[str]:
    return cells + [""] * (width - len(cells))


RENDERERS: dict[str, Callable[[TableModel], str]] = {
    "md": render_md,
    "csv": render_csv,
    "latex": render_latex,
}
