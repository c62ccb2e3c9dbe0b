"""The ablation's figures (issue 11), as matplotlib ``Figure`` objects drawn without pyplot: the study's table
(``table_figure``) and the data-scaling plot (``scaling_figure``: novelty and quality against the zoo's size)."""
from __future__ import annotations

import math
from typing import Any

from matplotlib.figure import Figure

from .result import AblationResult, COLUMNS


def headers(result: AblationResult) -> list[tuple[str, str, int]]:
    """(column, header with its better-direction arrow, direction) of the table's value columns: the quality, COV
    for field methods only, then the others."""
    out = []
    for column, header, direction in COLUMNS:
        if column == "quality":
            header, direction = result.quality_name, 1 if result.better_is_higher else -1
        elif column == "coverage" and result.quality_name != "MMD":
            continue
        arrow = {1: " \u2191", -1: " \u2193", 0: ""}[direction]
        out.append((column, f"{header}{arrow}", direction))
    return out


def cell_text(row: dict[str, Any], column: str) -> str:
    """``mean +- std`` of a table cell ("-" where there is no value; the std only with several seeds)."""
    value, std = row.get(column), row.get(f"{column}_std")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    text = f"{value:.3g}" if column != "fit_seconds" else f"{value:.0f}"
    if std is not None and not math.isnan(std):
        text += f" \u00b1 {std:.2g}" if column != "fit_seconds" else f" \u00b1 {std:.0f}"
    return text


def table_figure(result: AblationResult) -> Figure:
    """The study's modeling-factor table (study_spec §7): one row per level (the "training" and "default" rows
    first), the generator's parameter count, then each column's mean +- std over seeds; arrows mark the better
    direction."""
    columns = headers(result)
    rows = result.rows()
    body = [[row["level"], "-" if row["parameters"] is None else f"{row['parameters']:,}",
             *(cell_text(row, column) for column, _, _ in columns)] for row in rows]
    figure = Figure(figsize=(2.0 + 1.45 * (len(columns) + 1), 0.6 + 0.3 * len(body)), layout="constrained")
    ax = figure.add_subplot()
    ax.axis("off")
    table = ax.table(cellText=body, colLabels=["setting", "#params", *(header for _, header, _ in columns)],
                     loc="center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1, 1.25)
    for (row, _), cell in table.get_celld().items():
        if row == 0:
            cell.set_text_props(weight="bold")
        elif body[row - 1][0] in ("training", "default"):
            cell.set_facecolor("0.92")
    ax.set_title(f"{result.method}: one factor changed at a time ({len(result.settings['seeds'])} seed(s) per row)",
                 fontsize=9)
    return figure


def scaling_figure(result: AblationResult) -> Figure | None:
    """The data-scaling study: mean min L2 to training (novelty; with the training set's own training -> training
    mean) and quality against the number of training models, mean +- std over seeds. None without data levels."""
    rows = [row for row in result.rows() if row["factor"] in ("data", "default")]
    if len(rows) < 2:
        return None
    rows.sort(key=lambda row: row["training_models"])
    sizes = [row["training_models"] for row in rows]
    reference = {row.models: row.mean_min_l2 for row in result.training.values()}
    figure = Figure(figsize=(9, 3.4), layout="constrained")
    novelty, quality = figure.subplots(1, 2)
    novelty.errorbar(sizes, [row["mean_min_l2"] for row in rows], yerr=_std(rows, "mean_min_l2"), marker="o",
                     color="tab:red", capsize=3, label="generated \u2192 training")
    novelty.plot(sizes, [reference[size] for size in sizes], marker="s", color="tab:blue",
                 label="training \u2192 training")
    novelty.set(xlabel="training models", ylabel="mean min L2 to training (\u2191 novel)")
    novelty.legend(fontsize=8)
    quality.errorbar(sizes, [row["quality"] for row in rows], yerr=_std(rows, "quality"), marker="o",
                     color="tab:red", capsize=3)
    arrow = "\u2191" if result.better_is_higher else "\u2193"
    quality.set(xlabel="training models", ylabel=f"{result.quality_name} of samples ({arrow} better)")
    figure.suptitle(f"{result.method}: data scaling", fontsize=10)
    return figure


def _std(rows: list[dict[str, Any]], column: str) -> list[float]:
    return [0.0 if math.isnan(row.get(f"{column}_std", math.nan)) else row[f"{column}_std"] for row in rows]
